-- Helpers shared by the three merges (merge_employees.sql, merge_tasks.sql, merge_events.sql) and by
-- core.remove_missing: the mass-removal guard, the kept ids and calendar owners of a full merge,
-- and the account's row counts after a merge.

-- The mass-removal guard. A full read that would deactivate or mark deleted more than
-- greatest(max_share * live, min_rows) of the live rows it covers, or that brought no rows at all
-- while there are live rows, is refused: an empty or truncated answer that looked complete must not
-- wipe an account. p_guard is {"max_share": 0.2, "min_rows": 10, "allow": false} (missing keys or
-- NULL: those defaults); "allow": true lets a confirmed removal through. Raised as SQLSTATE BX001
-- with the figures as JSON in DETAIL (errors.py turns that into MassRemovalError). Raising aborts
-- the merge's transaction, so nothing of it is written.
create or replace function core.check_removal(
    p_entity text, p_batch integer, p_live integer, p_removing integer, p_guard jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_share double precision := coalesce((p_guard ->> 'max_share')::double precision, 0.2);
    v_min integer := coalesce((p_guard ->> 'min_rows')::integer, 10);
    v_empty boolean := coalesce(p_batch, 0) = 0;
begin
    if coalesce(p_removing, 0) = 0 or coalesce((p_guard ->> 'allow')::boolean, false) then
        return;
    end if;
    if v_empty or p_removing > greatest(v_share * p_live, v_min) then
        raise exception using
            errcode = 'BX001',
            message = format('a full merge of %s would remove %s of %s live rows', p_entity, p_removing, p_live),
            detail = pg_catalog.json_build_object(
                'entity', p_entity, 'live', p_live, 'removing', p_removing, 'max_share', v_share,
                'min_rows', v_min, 'empty_batch', v_empty)::text,
            hint = 'confirm the removal with the guard''s allow, or check the read';
    end if;
end
$$;

-- An empty temp table for one step of a merge, kept for the session: ON COMMIT DELETE ROWS empties it
-- at every commit, rows an earlier step of the same transaction left are deleted here. Creating
-- and dropping temp tables in every merge (about a dozen per portal synced) wrote catalogue rows
-- whose invalidations every other session had to process: measured with 16 sessions, ~4-5 ms of
-- Core CPU per table, more than a small portal's merge itself. p_definition is what follows the
-- table name in CREATE TABLE ("(a text, b uuid)", "of core.task_input"); a session whose table
-- was made from another definition (these functions were re-applied) gets it made anew.
-- Functions that read these tables are planned per call (plan_cache_mode = force_custom_plan): a
-- plan cached for a 20-row batch must not be reused for a 100k-row one.
create or replace function core.scratch(p_name text, p_definition text)
returns void
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- like every function naming pg_temp (its SQL is dynamic anyway)
as $$
declare
    v_setting text := 'core_scratch.' || p_name;
    v_digest text := pg_catalog.md5(p_definition);
begin
    if pg_catalog.to_regclass('pg_temp.' || pg_catalog.quote_ident(p_name)) is not null then
        if coalesce(pg_catalog.current_setting(v_setting, true), '') = v_digest then
            execute pg_catalog.format('delete from pg_temp.%I', p_name);
            return;
        end if;
        execute pg_catalog.format('drop table pg_temp.%I', p_name);
    end if;
    execute pg_catalog.format('create temp table %I %s on commit delete rows', p_name, p_definition);
    perform pg_catalog.set_config(v_setting, v_digest, false);
end
$$;

-- Ids a full merge must not remove (records read but rejected by a mapper), as
-- pg_temp.merge_keep for an anti-join; false (and the table not used) when there are none.
create or replace function core.stage_keep(p_keep text[])
returns boolean
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
begin
    if coalesce(pg_catalog.cardinality(p_keep), 0) = 0 then
        return false;
    end if;
    perform core.scratch('merge_keep', '(bitrix_id text primary key)');
    insert into pg_temp.merge_keep select distinct k from unnest(p_keep) k where k is not null;
    analyze pg_temp.merge_keep;
    return true;
end
$$;

-- Calendars a full events read covered, [["user", "7"], ["company_calendar", "0"], ...], as
-- pg_temp.merge_owners; false (and the table not used) when p_owners is NULL (every owner was read).
create or replace function core.stage_owners(p_owners jsonb)
returns boolean
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
begin
    if p_owners is null or pg_catalog.jsonb_typeof(p_owners) <> 'array' then
        return false;
    end if;
    perform core.scratch('merge_owners', '(calendar_type text, owner_id text)');
    insert into pg_temp.merge_owners
    select distinct o ->> 0, o ->> 1 from pg_catalog.jsonb_array_elements(p_owners) o
    where o ->> 0 is not null and o ->> 1 is not null;
    analyze pg_temp.merge_owners;
    return true;
end
$$;

-- (rows_in_table, live_rows) of an account when the merge could not count them on the way (an
-- incremental merge reads only its batch's rows): rows of the account in the table, removed ones
-- included, and the live ones (active employees, tasks and events not deleted). Tasks and events
-- count the deleted ones through their partial indexes (migration 0007), so the live figure costs
-- one index scan of the account, not a heap scan.
create or replace function core.account_counts(p_account uuid, p_entity text)
returns table (rows_in_table integer, live_rows integer)
language plpgsql stable
set search_path = ''
as $$
declare
    v_rows integer;
    v_dead integer;
begin
    if p_entity = 'employees' then
        return query
        select count(*)::integer, (count(*) filter (where e.is_active))::integer
        from core.employees e
        where e.company_id = core.account_company(p_account)
          and e.metadata ->> 'integration_account_id' = p_account::text;
        return;
    elsif p_entity = 'tasks' then
        select count(*)::integer into v_rows from core.tasks t where t.integration_account_id = p_account;
        select count(*)::integer into v_dead from core.tasks t
        where t.integration_account_id = p_account and t.is_deleted;
    elsif p_entity = 'calendar_events' then
        select count(*)::integer into v_rows from core.calendar_events t
        where t.integration_account_id = p_account;
        select count(*)::integer into v_dead from core.calendar_events t
        where t.integration_account_id = p_account and t.is_deleted;
    else
        raise exception using errcode = '22023', message = format('unknown entity %s', p_entity);
    end if;
    return query select v_rows, v_rows - v_dead;
end
$$;

-- Counts a full plan measured in its pass over the account's rows, read back by merge_*_staged in
-- the same transaction (a transaction-local setting: merge functions run one at a time per account
-- and entity under core.begin_merge's lock). '' = not measured (an incremental plan).
create or replace function core.set_plan_counts(p_rows integer, p_live integer)
returns void
language sql
set search_path = ''
as $$
    select pg_catalog.set_config('core.plan_counts',
                                 case when p_rows is null then '' else p_rows || ',' || p_live end, true);
$$;

create or replace function core.plan_counts()
returns integer[]
language sql stable
set search_path = ''
as $$
    select case when coalesce(pg_catalog.current_setting('core.plan_counts', true), '') = '' then null
                else pg_catalog.string_to_array(pg_catalog.current_setting('core.plan_counts', true), ',')::integer[]
           end;
$$;
