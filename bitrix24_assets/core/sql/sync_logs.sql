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

create or replace function core.finish_sync(
    p_sync uuid, p_status text, p_records_fetched integer default null,
    p_inserted integer default null, p_updated integer default null, p_unchanged integer default null,
    p_removed integer default null, p_cursor jsonb default null, p_error text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
    update core.integration_sync_logs l
    set status = p_status, finished_at = now(), records_fetched = p_records_fetched,
        inserted = p_inserted, updated = p_updated, unchanged = p_unchanged, removed = p_removed,
        cursor = p_cursor, error = p_error
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
create or replace function core.unresolved_task_people(p_account uuid)
returns integer
language sql stable
set search_path = ''
as $$
    -- the condition is tasks_unresolved_people's predicate (migration 0005): keep them equal
    select count(*)::integer from core.tasks t
    where t.integration_account_id = p_account
      and not t.is_deleted
      and ((t.responsible_bitrix_id is not null and t.responsible_id is null)
        or (t.created_by_bitrix_id is not null and t.created_by_id is null));
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
-- of the account not in p_keep is deactivated (employees) or marked deleted (tasks, events).
create or replace function core.remove_missing(
    p_account uuid, p_entity text, p_keep text[], p_from timestamptz default null, p_to timestamptz default null)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_count integer;
begin
    if p_entity = 'employees' then
        update core.employees e
        set is_active = false, metadata = e.metadata || '{"bitrix_active": false}'::jsonb, updated_at = now()
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
          and e.is_active
          and not exists (select 1 from unnest(p_keep) k where k = e.metadata ->> 'bitrix_id');
    elsif p_entity = 'tasks' then
        update core.tasks t set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account and not t.is_deleted
          and not exists (select 1 from unnest(p_keep) k where k = t.bitrix_id);
    elsif p_entity = 'calendar_events' then
        update core.calendar_events t set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account and not t.is_deleted
          and not exists (select 1 from unnest(p_keep) k where k = t.bitrix_id)
          and (p_from is null or p_to is null
               or (t.starts_at < p_to and coalesce(t.ends_at, t.starts_at) >= p_from));
    else
        raise exception using errcode = '22023', message = format('unknown entity %s', p_entity);
    end if;
    get diagnostics v_count = row_count;
    return v_count;
end
$$;
