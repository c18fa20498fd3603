-- Sync logs and cursors: one row per sync of one entity; the cursor of the last successful sync
-- is where the next incremental read starts.

create or replace function core.start_sync(p_account uuid, p_entity text, p_run_id text default null)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
    v_id uuid;
begin
    perform core.account_company(p_account);
    insert into core.integration_sync_logs (integration_account_id, company_id, provider, entity, status, run_id)
    select a.id, a.company_id, a.provider, p_entity, 'running', p_run_id
    from core.integration_accounts a
    where a.id = p_account
    returning id into v_id;
    return v_id;
end
$$;

-- p_rejected: records read but not merged, by reason ({"unknown status code": 2, ...}).
drop function if exists core.finish_sync(uuid, text, integer, integer, integer, integer, integer, jsonb, text);
create or replace function core.finish_sync(
    p_sync uuid, p_status text, p_records_fetched integer default null,
    p_inserted integer default null, p_updated integer default null, p_unchanged integer default null,
    p_removed integer default null, p_cursor jsonb default null, p_error text default null,
    p_rejected jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
    update core.integration_sync_logs l
    set status = p_status, finished_at = now(), records_fetched = p_records_fetched,
        inserted = p_inserted, updated = p_updated, unchanged = p_unchanged, removed = p_removed,
        cursor = p_cursor, error = p_error, rejected = p_rejected
    where l.id = p_sync;
    if not found then
        raise exception using errcode = 'P0002', message = format('sync log %s does not exist', p_sync);
    end if;
end
$$;

create or replace function core.get_cursor(p_account uuid, p_entity text)
returns jsonb
language sql stable
set search_path = ''
as $$
    select l.cursor from core.integration_sync_logs l
    where l.integration_account_id = p_account and l.entity = p_entity
      and l.status = 'success' and l.cursor is not null
    order by l.finished_at desc
    limit 1;
$$;

-- Health figures used by Dagster asset checks.
-- Live tasks whose responsible person or creator is not (yet) a known employee of the account:
-- "unknown" when one of those people is not in p_non_employees either, "non_employees" when all of
-- them are people the caller knows are not employees (e.g. the portal's extranet users), so a demo
-- portal with extranet users is not reported as broken.
drop function if exists core.unresolved_task_people(uuid);
create or replace function core.unresolved_task_people(p_account uuid, p_non_employees text[] default '{}')
returns table (unknown integer, non_employees integer)
language sql stable
set search_path = ''
as $$
    -- the WHERE is tasks_unresolved_people's predicate (migration 0005), word for word, so the count
    -- reads that partial index (a few entries) and not the account's tasks: keep them equal
    select (count(*) filter (where not u.all_non_employees))::integer,
           (count(*) filter (where u.all_non_employees))::integer
    from (
        select (t.responsible_bitrix_id is null or t.responsible_id is not null
                or t.responsible_bitrix_id = any (coalesce(p_non_employees, '{}')))
           and (t.created_by_bitrix_id is null or t.created_by_id is not null
                or t.created_by_bitrix_id = any (coalesce(p_non_employees, '{}'))) as all_non_employees
        from core.tasks t
        where t.integration_account_id = p_account
          and not t.is_deleted
          and ((t.responsible_bitrix_id is not null and t.responsible_id is null)
            or (t.created_by_bitrix_id is not null and t.created_by_id is null))
    ) u;
$$;

-- Whether core.<p_table> has a valid, immediate unique index on exactly
-- (integration_account_id, bitrix_id) with no predicate: then two rows of one account cannot share
-- a Bitrix id, and the duplicate check need not count (a 100k-row GROUP BY, ~50 ms after every
-- merge). A Core whose table lacks the index (created by the platform before these migrations,
-- the index dropped or left invalid by a failed concurrent build) is counted row by row.
create or replace function core.bitrix_id_is_unique(p_table text)
returns boolean
language sql stable
set search_path = ''
as $$
    select exists (
        select 1
        from pg_catalog.pg_index i
        where i.indrelid = to_regclass('core.' || p_table)
          and i.indisunique and i.indisvalid and i.indimmediate and i.indpred is null
          and i.indexprs is null
          and i.indnkeyatts = 2
          and (select array_agg(a.attname::text order by k.ord)
               from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
               join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
               where k.ord <= 2) = array['integration_account_id', 'bitrix_id']);
$$;

create or replace function core.duplicate_bitrix_ids(p_account uuid, p_entity text)
returns integer
language plpgsql stable
set search_path = ''
as $$
declare
    v_count integer;
begin
    if p_entity = 'employees' then
        select count(*)::integer into v_count from (
            select e.metadata ->> 'bitrix_id' from core.employees e
            where e.metadata ->> 'integration_account_id' = p_account::text and e.metadata ? 'bitrix_id'
            group by 1 having count(*) > 1) d;
    elsif p_entity in ('tasks', 'calendar_events') and core.bitrix_id_is_unique(p_entity) then
        v_count := 0;  -- the unique index rules duplicates out (see core.bitrix_id_is_unique)
    elsif p_entity = 'tasks' then
        select count(*)::integer into v_count from (
            select t.bitrix_id from core.tasks t where t.integration_account_id = p_account
            group by 1 having count(*) > 1) d;
    elsif p_entity = 'calendar_events' then
        select count(*)::integer into v_count from (
            select t.bitrix_id from core.calendar_events t where t.integration_account_id = p_account
            group by 1 having count(*) > 1) d;
    else
        raise exception using errcode = '22023', message = format('unknown entity %s', p_entity);
    end if;
    return v_count;
end
$$;

create or replace function core.count_active_employees(p_account uuid)
returns integer
language sql stable
set search_path = ''
as $$
    select count(*)::integer from core.employees e
    where e.company_id = core.account_company(p_account)
      and e.metadata ->> 'integration_account_id' = p_account::text and e.is_active;
$$;

create or replace function core.mark_deleted(p_account uuid, p_entity text, p_bitrix_ids text[])
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_count integer;
begin
    perform core.account_company(p_account);
    if p_entity = 'tasks' then
        update core.tasks t set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account and t.bitrix_id = any (p_bitrix_ids) and not t.is_deleted;
    elsif p_entity = 'calendar_events' then
        update core.calendar_events t set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account and t.bitrix_id = any (p_bitrix_ids) and not t.is_deleted;
    else
        raise exception using errcode = '22023',
            message = format('entity %s cannot be marked deleted (use tasks or calendar_events)', p_entity);
    end if;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

create or replace function core.recent_syncs(p_account uuid, p_entity text default null, p_limit integer default 20)
returns setof core.integration_sync_logs
language sql stable
set search_path = ''
as $$
    select l.* from core.integration_sync_logs l
    where l.integration_account_id = p_account and (p_entity is null or l.entity = p_entity)
    order by l.started_at desc, l.id
    limit p_limit;
$$;

-- Removal step of a full merge that arrived in several RPC chunks (Supabase backend): everything
-- of the account not in p_keep (the ids of all chunks, plus those read but rejected) is deactivated
-- (employees) or marked deleted (tasks; events only inside the window p_from..p_to and, with
-- p_owners, of the calendars read), under the same mass-removal guard as a single-transaction merge
-- (core.check_removal). p_dry_run only checks: the backend calls it before the first chunk, so a
-- tripped guard leaves Core as it was, and then for real after the last chunk (checked again there:
-- the guard is decided in the transaction that removes). Returns what was removed and the account's
-- counts after it.
drop function if exists core.remove_missing(uuid, text, text[], timestamptz, timestamptz);
create or replace function core.remove_missing(
    p_account uuid, p_entity text, p_keep text[], p_from timestamptz default null, p_to timestamptz default null,
    p_owners jsonb default null, p_guard jsonb default null, p_dry_run boolean default false)
returns table (removed integer, rows_in_table integer, live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
set work_mem = '128MB'
as $$
declare
    v_company uuid;
    v_owned boolean := false;
    v_rows integer;
    v_live integer;
    v_covered integer;
    v_removing integer;
    v_count integer := 0;
begin
    if p_entity not in ('employees', 'tasks', 'calendar_events') then
        raise exception using errcode = '22023', message = format('unknown entity %s', p_entity);
    end if;
    -- serialised with the merges of this account and entity
    select b.company_id into v_company from core.begin_merge(p_account, p_entity) b;
    perform core.scratch('remove_keep', '(bitrix_id text primary key)');
    insert into pg_temp.remove_keep select distinct k from unnest(p_keep) k where k is not null;
    analyze pg_temp.remove_keep;
    if p_entity = 'calendar_events' then
        v_owned := core.stage_owners(p_owners);
    end if;
    perform core.scratch('remove_targets', '(id uuid)');
    if p_entity = 'employees' then
        select count(*)::integer, (count(*) filter (where e.is_active))::integer
        into v_rows, v_live
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text;
        v_covered := v_live;
        insert into pg_temp.remove_targets
        select e.id from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
          and e.is_active
          and not exists (select 1 from pg_temp.remove_keep k where k.bitrix_id = e.metadata ->> 'bitrix_id');
    elsif p_entity = 'tasks' then
        select c.rows_in_table, c.live_rows into v_rows, v_live from core.account_counts(p_account, 'tasks') c;
        v_covered := v_live;
        insert into pg_temp.remove_targets
        select t.id from core.tasks t
        where t.integration_account_id = p_account and not t.is_deleted
          and not exists (select 1 from pg_temp.remove_keep k where k.bitrix_id = t.bitrix_id);
    else
        execute format($q$
            select count(*)::integer, (count(*) filter (where not t.is_deleted))::integer,
                   (count(*) filter (where not t.is_deleted and t.covered))::integer
            from (
                select t.is_deleted,
                       coalesce($2 is null or $3 is null
                                or (t.starts_at < $3 and coalesce(t.ends_at, t.starts_at) >= $2), false)
                       and %1$s as covered
                from core.calendar_events t
                where t.integration_account_id = $1
            ) t
        $q$, case when v_owned
                  then 'coalesce((t.calendar_type, coalesce(t.owner_bitrix_id, ''0'')) in'
                       ' (select o.calendar_type, o.owner_id from pg_temp.merge_owners o), false)'
                  else 'true' end)
        into v_rows, v_live, v_covered
        using p_account, p_from, p_to;
        execute format($q$
            insert into pg_temp.remove_targets
            select t.id from core.calendar_events t
            where t.integration_account_id = $1 and not t.is_deleted
              and coalesce($2 is null or $3 is null
                           or (t.starts_at < $3 and coalesce(t.ends_at, t.starts_at) >= $2), false)
              and %1$s
              and not exists (select 1 from pg_temp.remove_keep k where k.bitrix_id = t.bitrix_id)
        $q$, case when v_owned
                  then 'coalesce((t.calendar_type, coalesce(t.owner_bitrix_id, ''0'')) in'
                       ' (select o.calendar_type, o.owner_id from pg_temp.merge_owners o), false)'
                  else 'true' end)
        using p_account, p_from, p_to;
    end if;
    select count(*)::integer into v_removing from pg_temp.remove_targets;
    perform core.check_removal(p_entity, coalesce(cardinality(p_keep), 0), v_covered, v_removing, p_guard);
    if not p_dry_run and v_removing > 0 then
        -- outside a merge (no core.merging): the trigger clears the fingerprints of the removed rows
        if p_entity = 'employees' then
            update core.employees e
            set is_active = false, metadata = e.metadata || '{"bitrix_active": false}'::jsonb, updated_at = now()
            from pg_temp.remove_targets r where e.id = r.id;
        elsif p_entity = 'tasks' then
            update core.tasks t set is_deleted = true, updated_at = now()
            from pg_temp.remove_targets r where t.id = r.id;
        else
            update core.calendar_events t set is_deleted = true, updated_at = now()
            from pg_temp.remove_targets r where t.id = r.id;
        end if;
        get diagnostics v_count = row_count;
    end if;
    return query select v_count, v_rows, v_live - v_count;
end
$$;
