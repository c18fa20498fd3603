-- merge_events: Bitrix24 calendar events of one account -> core.calendar_events, unique on
-- (account, bitrix_id). Owner and creator Bitrix user ids are resolved to employee ids of the same
-- account. Only rows whose data changed are written.
-- p_full: events of this account absent from the batch are marked is_deleted ("removed"). Only
-- events the read covered are candidates: with a window (p_from, p_to) those overlapping it, and with
-- p_owners ([[calendar_type, owner id], ...], the calendars the read could open) those whose
-- (calendar_type, coalesce(owner_bitrix_id, '0')) is listed: a calendar that was not read (say, of a
-- deactivated user) says nothing about its events. Never those in p_keep (read but rejected by a
-- mapper), and only if the mass-removal guard (core.check_removal, p_guard) lets the removal
-- through; the guard compares the removals with the live events the read covered.
--
-- Same two phases as merge_tasks.sql (core.plan_events on (bitrix_id, source_hash), then
-- merge_events_staged on the full rows the plan asked for). One row per bitrix_id in both stages.
-- Counts as in merge_tasks.sql.

-- signatures of earlier versions (a changed argument list is a new function, not a replacement)
drop function if exists core.plan_events(uuid, boolean, timestamptz, timestamptz);
drop function if exists core.merge_events_staged(uuid, boolean, timestamptz, timestamptz);
drop function if exists core.merge_events(uuid, jsonb, boolean, timestamptz, timestamptz);

create or replace function core.plan_events(
    p_account uuid, p_full boolean, p_from timestamptz default null, p_to timestamptz default null,
    p_keep text[] default null, p_owners jsonb default null, p_guard jsonb default null)
returns setof text
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
set work_mem = '128MB'
as $$
declare
    v_company uuid;
    v_kept boolean;
    v_owned boolean;
    v_stored integer;
    v_live integer;
    v_covered integer;
    v_batch integer;
    v_removing integer;
    v_ids text[];
    v_targets uuid[];
    v_remove boolean[];
begin
    select b.company_id into v_company from core.begin_merge(p_account, 'calendar_events') b;
    perform core.scratch('merge_events_plan', '(bitrix_id text, target_id uuid, remove boolean)');
    perform pg_catalog.set_config('core.planned', 'events', true);  -- merge_events_staged checks it
    if not p_full then  -- statistics for the planner and a LEFT JOIN: see core.plan_tasks
        analyze pg_temp.stage_event_keys;
        perform core.set_plan_counts(null, null);
        execute $q$
            insert into pg_temp.merge_events_plan
            select k.bitrix_id, t.id, false
            from pg_temp.stage_event_keys k
            left join core.calendar_events t on t.integration_account_id = $1 and t.bitrix_id = k.bitrix_id
            where t.id is null
               or t.source_hash is distinct from k.source_hash
               or (t.owner_id is null and t.owner_bitrix_id is not null
                   and exists (select 1 from core.employees e
                               where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                 and e.metadata ->> 'bitrix_id' = t.owner_bitrix_id))
               or (t.created_by_id is null and t.created_by_bitrix_id is not null
                   and exists (select 1 from core.employees e
                               where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                 and e.metadata ->> 'bitrix_id' = t.created_by_bitrix_id))
        $q$ using p_account, v_company;
        return query select p.bitrix_id from pg_temp.merge_events_plan p;
        return;
    end if;
    -- full: one pass, as in core.plan_tasks; "covered" = live and inside what the read covered
    v_kept := core.stage_keep(p_keep);
    v_owned := core.stage_owners(p_owners);
    execute format($q$
        select count(w.target_id)::integer, (count(*) filter (where w.live))::integer,
               (count(*) filter (where w.live and w.covered))::integer,
               count(w.key)::integer, (count(*) filter (where w.work and w.key is null))::integer,
               array_agg(coalesce(w.key, w.bitrix_id)) filter (where w.work),
               array_agg(w.target_id) filter (where w.work),
               array_agg(w.key is null) filter (where w.work)
        from (
            select k.bitrix_id as key, t.bitrix_id, t.id as target_id, coalesce(not t.is_deleted, false) as live,
                   t.covered,
                   case
                       when k.bitrix_id is null then not t.is_deleted and t.covered and not t.kept
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
                   end as work
            from pg_temp.stage_event_keys k
            full join (
                select t.id, t.bitrix_id, t.source_hash, t.is_deleted, t.owner_id, t.owner_bitrix_id,
                       t.created_by_id, t.created_by_bitrix_id, %s as kept,
                       coalesce($3 is null or $4 is null
                                or (t.starts_at < $4 and coalesce(t.ends_at, t.starts_at) >= $3), false)
                       and %s as covered
                from core.calendar_events t
                where t.integration_account_id = $1
            ) t on t.bitrix_id = k.bitrix_id
            offset 0  -- evaluate "work" once per row, not once per aggregate that filters on it
        ) w
    $q$,
        case when v_kept then 't.bitrix_id in (select x.bitrix_id from pg_temp.merge_keep x)' else 'false' end,
        case when v_owned
             then 'coalesce((t.calendar_type, coalesce(t.owner_bitrix_id, ''0'')) in'
                  ' (select o.calendar_type, o.owner_id from pg_temp.merge_owners o), false)'
             else 'true' end)
    into v_stored, v_live, v_covered, v_batch, v_removing, v_ids, v_targets, v_remove
    using p_account, v_company, p_from, p_to;
    perform core.check_removal('calendar_events', v_batch + coalesce(cardinality(p_keep), 0), v_covered,
                               v_removing, p_guard);
    perform core.set_plan_counts(v_stored, v_live);
    insert into pg_temp.merge_events_plan select * from unnest(v_ids, v_targets, v_remove);
    return query select p.bitrix_id from pg_temp.merge_events_plan p where not p.remove;
end
$$;

create or replace function core.merge_events_staged(p_account uuid, p_full boolean, p_counts boolean default true)
returns table (inserted integer, updated integer, unchanged integer, removed integer, rows_in_table integer,
               live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
set work_mem = '128MB'
set core.merging = 'on'  -- our own writes keep their fingerprint (see core.clear_source_hash)
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_total integer;
    v_ins integer;
    v_upd integer;
    v_rem integer := 0;
    v_live_delta integer;
    v_before integer[] := core.plan_counts();
begin
    if coalesce(pg_catalog.current_setting('core.planned', true), '') <> 'events' then
        raise exception using errcode = '55000', message = 'core.plan_events must run first in this transaction';
    end if;
    select count(*) into v_total from pg_temp.stage_event_keys;
    perform core.scratch('merge_events_diff', '(like core.event_input, owner_id uuid, created_by_id uuid, '
                                              'target_id uuid, was_deleted boolean, same boolean)');
    insert into pg_temp.merge_events_diff
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    )
    select s.*, o.id as owner_id, c.id as created_by_id, p.target_id, t.is_deleted as was_deleted,
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

    if v_before is not null then
        -- the full plan's counts, moved by what was written (an event's row says whether it is deleted)
        select coalesce(sum(case
                   when d.target_id is null then case when coalesce(d.is_deleted, false) then 0 else 1 end
                   when d.same or d.was_deleted = coalesce(d.is_deleted, false) then 0
                   when d.was_deleted then 1
                   else -1 end), 0)::integer
        into v_live_delta from pg_temp.merge_events_diff d;
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, v_before[1] + v_ins,
                            v_before[2] + v_live_delta - v_rem;
    elsif p_counts then
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, c.rows_in_table, c.live_rows
                     from core.account_counts(p_account, 'calendar_events') c;
    else
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, null::integer, null::integer;
    end if;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.event_input objects (each with "ord" and "source_hash").
create or replace function core.merge_events(
    p_account uuid, p_rows jsonb, p_full boolean default false,
    p_from timestamptz default null, p_to timestamptz default null, p_keep text[] default null,
    p_owners jsonb default null, p_guard jsonb default null, p_counts boolean default true)
returns table (inserted integer, updated integer, unchanged integer, removed integer, rows_in_table integer,
               live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
begin
    perform core.scratch('stage_events', 'of core.event_input');
    perform core.scratch('stage_event_keys', '(bitrix_id text, source_hash uuid)');
    insert into pg_temp.stage_events
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.event_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    insert into pg_temp.stage_event_keys select s.bitrix_id, s.source_hash from pg_temp.stage_events s;
    perform core.plan_events(p_account, p_full, p_from, p_to, p_keep, p_owners, p_guard);
    return query select * from core.merge_events_staged(p_account, p_full, p_counts);
end
$$;
