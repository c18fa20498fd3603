-- merge_tasks: Bitrix24 tasks of one account -> core.tasks, unique on (account, bitrix_id).
-- Responsible and creator Bitrix user ids are resolved to employee ids of the same account.
-- p_full: tasks of this account absent from the batch are marked is_deleted ("removed"), except
-- those in p_keep (read but rejected by a mapper: kept with their last good values), and only if
-- the mass-removal guard (core.check_removal, p_guard) lets the removal through.
--
-- Two phases in one transaction, both backends (see README "Merge shape"):
-- 1. core.plan_tasks reads pg_temp.stage_task_keys (bitrix_id, source_hash) for the WHOLE batch and
--    joins it with the account's stored (bitrix_id, source_hash): new rows, rows whose fingerprint
--    differs (or was cleared by a direct edit), deleted rows that are back, rows whose unresolved
--    people can now be resolved, and (p_full) stored rows missing from the batch go into
--    pg_temp.merge_tasks_plan. It returns the bitrix ids whose full rows the merge needs.
-- 2. core.merge_tasks_staged reads those full rows from pg_temp.stage_tasks (the Postgres backend
--    COPYs only them; the RPC path has staged all rows) and writes: INSERT new rows, UPDATE changed
--    ones, refresh only the fingerprint of rows whose data turned out equal (counted unchanged),
--    mark missing rows deleted. An unchanged rerun thus ships and compares 2 columns per row.
-- Both stage tables hold ONE row per bitrix_id (callers dedupe, the last row of a batch winning).
--
-- Counts: a full plan counts the account's rows and live rows in its pass over them (no extra
-- scan) and merge_tasks_staged adds what it inserted, revived and removed; an incremental merge
-- counts them after writing (core.account_counts), unless p_counts is false (the Supabase backend's
-- chunks before the last).

-- signatures of earlier versions (a changed argument list is a new function, not a replacement)
drop function if exists core.plan_tasks(uuid, boolean);
drop function if exists core.merge_tasks_staged(uuid, boolean);
drop function if exists core.merge_tasks(uuid, jsonb, boolean);

create or replace function core.plan_tasks(
    p_account uuid, p_full boolean, p_keep text[] default null, p_guard jsonb default null)
returns setof text
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
set work_mem = '128MB'
as $$
declare
    v_company uuid;
    v_rows boolean;
    v_kept boolean;
    v_stored integer;
    v_live integer;
    v_batch integer;
    v_removing integer;
    v_ids text[];
    v_targets uuid[];
    v_remove boolean[];
begin
    select b.company_id, b.has_rows into v_company, v_rows from core.begin_merge(p_account, 'tasks') b;
    -- a temp table has no statistics: without them the planner expects ~1,000 keys and hashes all
    -- of the account's stored rows even for a one-row batch (an incremental sync, a webhook):
    -- 30-60 ms on 100k tasks instead of one index probe. A full batch is joined with all stored
    -- rows anyway (FULL JOIN), so only partial ones are sampled.
    if not p_full then
        analyze pg_temp.stage_task_keys;
    end if;
    perform core.scratch('merge_tasks_plan', '(bitrix_id text, target_id uuid, remove boolean)');
    perform pg_catalog.set_config('core.planned', 'tasks', true);  -- merge_tasks_staged checks it
    if not v_rows then
        -- first load: everything is new, nothing to remove (merge_tasks_staged inserts from the stage)
        perform core.set_plan_counts(0, 0);
        return query select k.bitrix_id from pg_temp.stage_task_keys k;
        return;
    end if;
    -- incremental: a LEFT JOIN, so a small batch (a webhook, one Supabase chunk) need not read all of
    -- the account's rows; nothing is removed and the counts are made after the merge
    if not p_full then
        perform core.set_plan_counts(null, null);
        -- EXECUTE: planned for this batch's statistics each time, never a cached generic plan
        execute $q$
            insert into pg_temp.merge_tasks_plan
            select k.bitrix_id, t.id, false
            from pg_temp.stage_task_keys k
            left join core.tasks t on t.integration_account_id = $1 and t.bitrix_id = k.bitrix_id
            where t.id is null
               or t.source_hash is distinct from k.source_hash
               or t.is_deleted
               or (t.responsible_id is null and t.responsible_bitrix_id is not null
                   and exists (select 1 from core.employees e
                               where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                 and e.metadata ->> 'bitrix_id' = t.responsible_bitrix_id))
               or (t.created_by_id is null and t.created_by_bitrix_id is not null
                   and exists (select 1 from core.employees e
                               where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                 and e.metadata ->> 'bitrix_id' = t.created_by_bitrix_id))
        $q$ using p_account, v_company;
        return query select p.bitrix_id from pg_temp.merge_tasks_plan p;
        return;
    end if;
    -- full: one FULL JOIN pass over the batch's keys and the account's rows yields the rows to
    -- compare, the rows to remove and the counts the guard and MergeCounts need. The work list comes
    -- back as arrays (empty for an unchanged rerun), so the pass is a single aggregate.
    v_kept := core.stage_keep(p_keep);
    execute format($q$
        select count(w.target_id)::integer, (count(*) filter (where w.live))::integer,
               count(w.key)::integer, (count(*) filter (where w.work and w.key is null))::integer,
               array_agg(coalesce(w.key, w.bitrix_id)) filter (where w.work),
               array_agg(w.target_id) filter (where w.work),
               array_agg(w.key is null) filter (where w.work)
        from (
            select k.bitrix_id as key, t.bitrix_id, t.id as target_id, coalesce(not t.is_deleted, false) as live,
                   case
                       when k.bitrix_id is null then not t.is_deleted and not t.kept
                       else t.id is null
                         or t.source_hash is distinct from k.source_hash
                         or t.is_deleted
                         or (t.responsible_id is null and t.responsible_bitrix_id is not null
                             and exists (select 1 from core.employees e
                                         where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                           and e.metadata ->> 'bitrix_id' = t.responsible_bitrix_id))
                         or (t.created_by_id is null and t.created_by_bitrix_id is not null
                             and exists (select 1 from core.employees e
                                         where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
                                           and e.metadata ->> 'bitrix_id' = t.created_by_bitrix_id))
                   end as work
            from pg_temp.stage_task_keys k
            full join (
                select t.id, t.bitrix_id, t.source_hash, t.is_deleted, t.responsible_id, t.responsible_bitrix_id,
                       t.created_by_id, t.created_by_bitrix_id, %s as kept
                from core.tasks t
                where t.integration_account_id = $1
            ) t on t.bitrix_id = k.bitrix_id
            offset 0  -- evaluate "work" once per row, not once per aggregate that filters on it
        ) w
    $q$, case when v_kept then 't.bitrix_id in (select x.bitrix_id from pg_temp.merge_keep x)' else 'false' end)
    into v_stored, v_live, v_batch, v_removing, v_ids, v_targets, v_remove
    using p_account, v_company;
    perform core.check_removal('tasks', v_batch + coalesce(cardinality(p_keep), 0), v_live, v_removing, p_guard);
    perform core.set_plan_counts(v_stored, v_live);
    insert into pg_temp.merge_tasks_plan select * from unnest(v_ids, v_targets, v_remove);
    return query select p.bitrix_id from pg_temp.merge_tasks_plan p where not p.remove;
end
$$;

create or replace function core.merge_tasks_staged(p_account uuid, p_full boolean, p_counts boolean default true)
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
    v_revived integer;
    v_before integer[] := core.plan_counts();
begin
    if coalesce(pg_catalog.current_setting('core.planned', true), '') <> 'tasks' then
        raise exception using errcode = '55000', message = 'core.plan_tasks must run first in this transaction';
    end if;
    select count(*) into v_total from pg_temp.stage_task_keys;

    if not exists (select 1 from core.tasks t where t.integration_account_id = p_account) then
        -- first load of this account: nothing to compare or remove, insert straight from the stage
        with people as (
            select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
            from core.employees e
            where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
        )
        insert into core.tasks
            (id, company_id, integration_account_id, bitrix_id, title, description, status, status_code,
             priority, deadline, start_date_plan, end_date_plan, closed_at, created_at_source, changed_at_source,
             responsible_id, created_by_id, responsible_bitrix_id, created_by_bitrix_id, group_id, is_deleted,
             metadata, source_hash)
        select core.row_id(p_account, s.bitrix_id), v_company, p_account, s.bitrix_id, s.title, s.description,
               s.status, s.status_code, s.priority, s.deadline, s.start_date_plan, s.end_date_plan, s.closed_at,
               s.created_at_source, s.changed_at_source, r.id, c.id, s.responsible_bitrix_id,
               s.created_by_bitrix_id, s.group_id, false, coalesce(s.metadata, '{}'::jsonb), s.source_hash
        from pg_temp.stage_tasks s
        left join people r on r.bitrix_id = s.responsible_bitrix_id
        left join people c on c.bitrix_id = s.created_by_bitrix_id;
        get diagnostics v_ins = row_count;
        return query select v_ins, 0, v_total - v_ins, 0, v_ins, v_ins;
        return;
    end if;

    perform core.scratch('merge_tasks_diff', '(like core.task_input, responsible_id uuid, created_by_id uuid, '
                                             'target_id uuid, was_deleted boolean, same boolean)');
    insert into pg_temp.merge_tasks_diff
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    )
    select s.*, r.id as responsible_id, c.id as created_by_id, p.target_id, t.is_deleted as was_deleted,
           t.id is not null
           and (t.title, t.description, t.status, t.status_code, t.priority, t.deadline, t.start_date_plan,
                t.end_date_plan, t.closed_at, t.created_at_source, t.changed_at_source, t.responsible_id,
                t.created_by_id, t.responsible_bitrix_id, t.created_by_bitrix_id, t.group_id, t.is_deleted,
                t.metadata)
               is not distinct from
               (s.title, s.description, s.status, s.status_code, s.priority, s.deadline, s.start_date_plan,
                s.end_date_plan, s.closed_at, s.created_at_source, s.changed_at_source, r.id,
                c.id, s.responsible_bitrix_id, s.created_by_bitrix_id, s.group_id, false,
                coalesce(s.metadata, '{}'::jsonb)) as same
    from pg_temp.merge_tasks_plan p
    join pg_temp.stage_tasks s on s.bitrix_id = p.bitrix_id
    left join core.tasks t on t.id = p.target_id
    left join people r on r.bitrix_id = s.responsible_bitrix_id
    left join people c on c.bitrix_id = s.created_by_bitrix_id
    where not p.remove;

    insert into core.tasks
        (id, company_id, integration_account_id, bitrix_id, title, description, status, status_code, priority,
         deadline, start_date_plan, end_date_plan, closed_at, created_at_source, changed_at_source,
         responsible_id, created_by_id, responsible_bitrix_id, created_by_bitrix_id, group_id, is_deleted,
         metadata, source_hash)
    select core.row_id(p_account, d.bitrix_id), v_company, p_account, d.bitrix_id, d.title, d.description,
           d.status, d.status_code, d.priority, d.deadline, d.start_date_plan, d.end_date_plan, d.closed_at,
           d.created_at_source, d.changed_at_source, d.responsible_id, d.created_by_id, d.responsible_bitrix_id,
           d.created_by_bitrix_id, d.group_id, false, coalesce(d.metadata, '{}'::jsonb), d.source_hash
    from pg_temp.merge_tasks_diff d
    where d.target_id is null;
    get diagnostics v_ins = row_count;

    update core.tasks t
    set title = d.title, description = d.description, status = d.status, status_code = d.status_code,
        priority = d.priority, deadline = d.deadline, start_date_plan = d.start_date_plan,
        end_date_plan = d.end_date_plan, closed_at = d.closed_at, created_at_source = d.created_at_source,
        changed_at_source = d.changed_at_source, responsible_id = d.responsible_id,
        created_by_id = d.created_by_id, responsible_bitrix_id = d.responsible_bitrix_id,
        created_by_bitrix_id = d.created_by_bitrix_id, group_id = d.group_id, is_deleted = false,
        metadata = coalesce(d.metadata, '{}'::jsonb), source_hash = d.source_hash, updated_at = now()
    from pg_temp.merge_tasks_diff d
    where d.target_id is not null and not d.same and t.id = d.target_id;
    get diagnostics v_upd = row_count;

    -- same data under another (or a cleared) fingerprint: store the fingerprint, data untouched
    update core.tasks t
    set source_hash = d.source_hash
    from pg_temp.merge_tasks_diff d
    where d.target_id is not null and d.same and t.id = d.target_id
      and t.source_hash is distinct from d.source_hash;

    if p_full then
        -- source_hash = null: a row that comes back is compared in full
        update core.tasks t
        set is_deleted = true, source_hash = null, updated_at = now()
        from pg_temp.merge_tasks_plan p
        where p.remove and t.id = p.target_id;
        get diagnostics v_rem = row_count;
    end if;

    if v_before is not null then
        -- the full plan's counts, moved by what was written: inserts and revived rows are live again
        select count(*)::integer into v_revived from pg_temp.merge_tasks_diff d
        where d.target_id is not null and d.was_deleted;
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, v_before[1] + v_ins,
                            v_before[2] + v_ins + v_revived - v_rem;
    elsif p_counts then
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, c.rows_in_table, c.live_rows
                     from core.account_counts(p_account, 'tasks') c;
    else
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, null::integer, null::integer;
    end if;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.task_input objects (each with "ord" and "source_hash"); all rows are staged, the plan
-- decides which of them are compared.
create or replace function core.merge_tasks(
    p_account uuid, p_rows jsonb, p_full boolean default false, p_keep text[] default null,
    p_guard jsonb default null, p_counts boolean default true)
returns table (inserted integer, updated integer, unchanged integer, removed integer, rows_in_table integer,
               live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
begin
    perform core.scratch('stage_tasks', 'of core.task_input');
    perform core.scratch('stage_task_keys', '(bitrix_id text, source_hash uuid)');
    insert into pg_temp.stage_tasks
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.task_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    insert into pg_temp.stage_task_keys select s.bitrix_id, s.source_hash from pg_temp.stage_tasks s;
    perform core.plan_tasks(p_account, p_full, p_keep, p_guard);
    return query select * from core.merge_tasks_staged(p_account, p_full, p_counts);
end
$$;
