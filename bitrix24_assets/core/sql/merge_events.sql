-- merge_events: Bitrix24 calendar events of one account -> core.calendar_events, unique on
-- (account, bitrix_id). Owner and creator Bitrix user ids are resolved to employee ids of the same
-- account. Unchanged rows are filtered out before writing.
-- p_full: events of this account absent from the batch are marked is_deleted ("removed"); with a
-- window (p_from, p_to) only events overlapping it are candidates, because a windowed read says
-- nothing about events outside it.

-- The *_staged function expects pg_temp stage table with ONE row per bitrix_id (the callers dedupe:
-- PostgresStore in Python, the RPC wrapper below with DISTINCT ON), so it needs no sort.
create or replace function core.merge_events_staged(
    p_account uuid, p_full boolean, p_from timestamptz default null, p_to timestamptz default null)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
set work_mem = '128MB'
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_total integer;
    v_ins integer;
    v_upd integer;
    v_rem integer := 0;
begin
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    ), src as (
        select s.* from pg_temp.stage_events s
    ), resolved as (
        select src.*, o.id as owner_id, c.id as created_by_id
        from src
        left join people o on o.bitrix_id = src.owner_bitrix_id
        left join people c on c.bitrix_id = src.created_by_bitrix_id
    ), changed as (
        select n.*
        from resolved n
        left join core.calendar_events t on t.integration_account_id = p_account and t.bitrix_id = n.bitrix_id
        where t.id is null
           or (t.name, t.description, t.calendar_type, t.owner_bitrix_id, t.owner_id, t.starts_at, t.ends_at,
               t.all_day, t.location, t.created_by_bitrix_id, t.created_by_id, t.is_deleted,
               t.changed_at_source, t.metadata)
              is distinct from
              (n.name, n.description, n.calendar_type, n.owner_bitrix_id, n.owner_id, n.starts_at, n.ends_at,
               coalesce(n.all_day, false), n.location, n.created_by_bitrix_id, n.created_by_id,
               coalesce(n.is_deleted, false), n.changed_at_source, coalesce(n.metadata, '{}'::jsonb))
    ), written as (
        insert into core.calendar_events as t
            (id, company_id, integration_account_id, bitrix_id, name, description, calendar_type, owner_bitrix_id,
             owner_id, starts_at, ends_at, all_day, location, created_by_bitrix_id, created_by_id, is_deleted,
             changed_at_source, metadata)
        select core.row_id(p_account, c.bitrix_id), v_company, p_account, c.bitrix_id, c.name, c.description, c.calendar_type, c.owner_bitrix_id,
               c.owner_id, c.starts_at, c.ends_at, coalesce(c.all_day, false), c.location,
               c.created_by_bitrix_id, c.created_by_id, coalesce(c.is_deleted, false), c.changed_at_source,
               coalesce(c.metadata, '{}'::jsonb)
        from changed c
        on conflict (integration_account_id, bitrix_id) do update
        set name = excluded.name, description = excluded.description, calendar_type = excluded.calendar_type,
            owner_bitrix_id = excluded.owner_bitrix_id, owner_id = excluded.owner_id,
            starts_at = excluded.starts_at, ends_at = excluded.ends_at, all_day = excluded.all_day,
            location = excluded.location, created_by_bitrix_id = excluded.created_by_bitrix_id,
            created_by_id = excluded.created_by_id, is_deleted = excluded.is_deleted,
            changed_at_source = excluded.changed_at_source, metadata = excluded.metadata, updated_at = now()
        returning (t.xmax = 0) as is_insert
    )
    select (select count(*) from src),
           count(*) filter (where w.is_insert),
           count(*) filter (where not w.is_insert)
    into v_total, v_ins, v_upd
    from written w;

    if p_full then
        update core.calendar_events t
        set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account
          and not t.is_deleted
          and (p_from is null or p_to is null
               or (t.starts_at < p_to and coalesce(t.ends_at, t.starts_at) >= p_from))
          and not exists (select 1 from pg_temp.stage_events s where s.bitrix_id = t.bitrix_id);
        get diagnostics v_rem = row_count;
    end if;

    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same merge, rows given as a JSON array of
-- core.event_input objects (each with "ord").
create or replace function core.merge_events(
    p_account uuid, p_rows jsonb, p_full boolean default false,
    p_from timestamptz default null, p_to timestamptz default null)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_events;
    create temp table stage_events of core.event_input on commit drop;
    insert into pg_temp.stage_events
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.event_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    return query select * from core.merge_events_staged(p_account, p_full, p_from, p_to);
    drop table pg_temp.stage_events;
end
$$;
