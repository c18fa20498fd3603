-- merge_events: Bitrix24 calendar events of one account -> core.calendar_events, unique on
-- (account, bitrix_id). Owner and creator Bitrix user ids are resolved to employee ids of the same
-- account. Only rows whose data changed are written.
-- p_full: events of this account absent from the batch are marked is_deleted ("removed"); with a
-- window (p_from, p_to) only events overlapping it are candidates, because a windowed read says
-- nothing about events outside it.
--
-- Same two phases as merge_tasks.sql (core.plan_events on (bitrix_id, source_hash), then
-- merge_events_staged on the full rows the plan asked for). One row per bitrix_id in both stages.

create or replace function core.plan_events(
    p_account uuid, p_full boolean, p_from timestamptz default null, p_to timestamptz default null)
returns setof text
language plpgsql
set search_path = ''
set work_mem = '128MB'
as $$
declare
    v_company uuid;
begin
    select b.company_id into v_company from core.begin_merge(p_account, 'calendar_events') b;
    if not p_full then  -- statistics for the planner: see core.plan_tasks
        analyze pg_temp.stage_event_keys;
    end if;
    drop table if exists pg_temp.merge_events_plan;
    create temp table merge_events_plan (bitrix_id text, target_id uuid, remove boolean) on commit drop;
    execute format($q$
        insert into pg_temp.merge_events_plan
        select coalesce(k.bitrix_id, t.bitrix_id), t.id, k.bitrix_id is null
        from pg_temp.stage_event_keys k
        %s join (
            select t.id, t.bitrix_id, t.source_hash, t.is_deleted, t.starts_at, t.ends_at, t.owner_id,
                   t.owner_bitrix_id, t.created_by_id, t.created_by_bitrix_id
            from core.calendar_events t
            where t.integration_account_id = $1
        ) t on t.bitrix_id = k.bitrix_id
        where case
            when k.bitrix_id is null then
                not t.is_deleted
                and ($3 is null or $4 is null or (t.starts_at < $4 and coalesce(t.ends_at, t.starts_at) >= $3))
            else t.id is null
              or t.source_hash is distinct from k.source_hash
              or (t.owner_id is null and t.owner_bitrix_id is not null
                  and exists (select 1 from core.employees e
                              where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                and e.metadata ->> 'bitrix_id' = t.owner_bitrix_id))
              or (t.created_by_id is null and t.created_by_bitrix_id is not null
                  and exists (select 1 from core.employees e
                              where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                and e.metadata ->> 'bitrix_id' = t.created_by_bitrix_id))
        end
    $q$, case when p_full then 'full' else 'left' end) using p_account, v_company, p_from, p_to;
    return query select p.bitrix_id from pg_temp.merge_events_plan p where not p.remove;
end
$$;

create or replace function core.merge_events_staged(
    p_account uuid, p_full boolean, p_from timestamptz default null, p_to timestamptz default null)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
set work_mem = '128MB'
set core.merging = 'on'  -- our own writes keep their fingerprint (see core.clear_source_hash)
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_total integer;
    v_ins integer;
    v_upd integer;
    v_rem integer := 0;
begin
    if to_regclass('pg_temp.merge_events_plan') is null then
        raise exception using errcode = '55000', message = 'core.plan_events must run first in this transaction';
    end if;
    select count(*) into v_total from pg_temp.stage_event_keys;
    drop table if exists pg_temp.merge_events_diff;
    create temp table merge_events_diff on commit drop as
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    )
    select s.*, o.id as owner_id, c.id as created_by_id, p.target_id,
           t.id is not null
           and (t.name, t.description, t.calendar_type, t.owner_bitrix_id, t.owner_id, t.starts_at, t.ends_at,
                t.all_day, t.location, t.created_by_bitrix_id, t.created_by_id, t.is_deleted,
                t.changed_at_source, t.metadata)
               is not distinct from
               (s.name, s.description, s.calendar_type, s.owner_bitrix_id, o.id, s.starts_at, s.ends_at,
                coalesce(s.all_day, false), s.location, s.created_by_bitrix_id, c.id,
                coalesce(s.is_deleted, false), s.changed_at_source, coalesce(s.metadata, '{}'::jsonb)) as same
    from pg_temp.merge_events_plan p
    join pg_temp.stage_events s on s.bitrix_id = p.bitrix_id
    left join core.calendar_events t on t.id = p.target_id
    left join people o on o.bitrix_id = s.owner_bitrix_id
    left join people c on c.bitrix_id = s.created_by_bitrix_id
    where not p.remove;

    insert into core.calendar_events
        (id, company_id, integration_account_id, bitrix_id, name, description, calendar_type, owner_bitrix_id,
         owner_id, starts_at, ends_at, all_day, location, created_by_bitrix_id, created_by_id, is_deleted,
         changed_at_source, metadata, source_hash)
    select core.row_id(p_account, d.bitrix_id), v_company, p_account, d.bitrix_id, d.name, d.description,
           d.calendar_type, d.owner_bitrix_id, d.owner_id, d.starts_at, d.ends_at, coalesce(d.all_day, false),
           d.location, d.created_by_bitrix_id, d.created_by_id, coalesce(d.is_deleted, false),
           d.changed_at_source, coalesce(d.metadata, '{}'::jsonb), d.source_hash
    from pg_temp.merge_events_diff d
    where d.target_id is null;
    get diagnostics v_ins = row_count;

    update core.calendar_events t
    set name = d.name, description = d.description, calendar_type = d.calendar_type,
        owner_bitrix_id = d.owner_bitrix_id, owner_id = d.owner_id, starts_at = d.starts_at, ends_at = d.ends_at,
        all_day = coalesce(d.all_day, false), location = d.location, created_by_bitrix_id = d.created_by_bitrix_id,
        created_by_id = d.created_by_id, is_deleted = coalesce(d.is_deleted, false),
        changed_at_source = d.changed_at_source, metadata = coalesce(d.metadata, '{}'::jsonb),
        source_hash = d.source_hash, updated_at = now()
    from pg_temp.merge_events_diff d
    where d.target_id is not null and not d.same and t.id = d.target_id;
    get diagnostics v_upd = row_count;

    -- same data under another (or a cleared) fingerprint: store the fingerprint, data untouched
    update core.calendar_events t
    set source_hash = d.source_hash
    from pg_temp.merge_events_diff d
    where d.target_id is not null and d.same and t.id = d.target_id
      and t.source_hash is distinct from d.source_hash;

    if p_full then
        -- source_hash = null: an event that comes back is compared in full
        update core.calendar_events t
        set is_deleted = true, source_hash = null, updated_at = now()
        from pg_temp.merge_events_plan p
        where p.remove and t.id = p.target_id;
        get diagnostics v_rem = row_count;
    end if;

    drop table pg_temp.merge_events_diff;
    drop table pg_temp.merge_events_plan;
    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.event_input objects (each with "ord" and "source_hash").
create or replace function core.merge_events(
    p_account uuid, p_rows jsonb, p_full boolean default false,
    p_from timestamptz default null, p_to timestamptz default null)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_events;
    drop table if exists pg_temp.stage_event_keys;
    create temp table stage_events of core.event_input on commit drop;
    insert into pg_temp.stage_events
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.event_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    create temp table stage_event_keys on commit drop as
    select s.bitrix_id, s.source_hash from pg_temp.stage_events s;
    perform core.plan_events(p_account, p_full, p_from, p_to);
    return query select * from core.merge_events_staged(p_account, p_full, p_from, p_to);
    drop table pg_temp.stage_events;
    drop table pg_temp.stage_event_keys;
end
$$;
