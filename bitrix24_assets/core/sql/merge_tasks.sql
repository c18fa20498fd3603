-- merge_tasks: Bitrix24 tasks of one account -> core.tasks, unique on (account, bitrix_id).
-- Responsible and creator Bitrix user ids are resolved to employee ids of the same account.
-- p_full: tasks of this account absent from the batch are marked is_deleted ("removed").
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

create or replace function core.plan_tasks(p_account uuid, p_full boolean)
returns setof text
language plpgsql
set search_path = ''
set work_mem = '128MB'
as $$
declare
    v_company uuid;
    v_rows boolean;
begin
    select b.company_id, b.has_rows into v_company, v_rows from core.begin_merge(p_account, 'tasks') b;
    -- a temp table has no statistics: without them the planner expects ~1,000 keys and hashes all
    -- of the account's stored rows even for a one-row batch (an incremental sync, a webhook):
    -- 30-60 ms on 100k tasks instead of one index probe. A full batch is joined with all stored
    -- rows anyway (FULL JOIN), so only partial ones are sampled.
    if not p_full then
        analyze pg_temp.stage_task_keys;
    end if;
    drop table if exists pg_temp.merge_tasks_plan;
    create temp table merge_tasks_plan (bitrix_id text, target_id uuid, remove boolean) on commit drop;
    if not v_rows then
        -- first load: everything is new, nothing to remove (merge_tasks_staged inserts from the stage)
        return query select k.bitrix_id from pg_temp.stage_task_keys k;
        return;
    end if;
    -- full: a FULL JOIN also yields the stored rows missing from the batch; otherwise a LEFT JOIN,
    -- so a small batch (a webhook, one Supabase chunk) need not read all of the account's rows.
    execute format($q$
        insert into pg_temp.merge_tasks_plan
        select coalesce(k.bitrix_id, t.bitrix_id), t.id, k.bitrix_id is null
        from pg_temp.stage_task_keys k
        %s join (
            select t.id, t.bitrix_id, t.source_hash, t.is_deleted, t.responsible_id, t.responsible_bitrix_id,
                   t.created_by_id, t.created_by_bitrix_id
            from core.tasks t
            where t.integration_account_id = $1
        ) t on t.bitrix_id = k.bitrix_id
        where case
            when k.bitrix_id is null then not t.is_deleted
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
        end
    $q$, case when p_full then 'full' else 'left' end) using p_account, v_company;
    return query select p.bitrix_id from pg_temp.merge_tasks_plan p where not p.remove;
end
$$;

create or replace function core.merge_tasks_staged(p_account uuid, p_full boolean)
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
    if to_regclass('pg_temp.merge_tasks_plan') is null then
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
        return query select v_ins, 0, v_total - v_ins, 0;
        return;
    end if;

    drop table if exists pg_temp.merge_tasks_diff;
    create temp table merge_tasks_diff on commit drop as
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    )
    select s.*, r.id as responsible_id, c.id as created_by_id, p.target_id,
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

    drop table pg_temp.merge_tasks_diff;
    drop table pg_temp.merge_tasks_plan;
    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.task_input objects (each with "ord" and "source_hash"); all rows are staged, the plan
-- decides which of them are compared.
create or replace function core.merge_tasks(p_account uuid, p_rows jsonb, p_full boolean default false)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_tasks;
    drop table if exists pg_temp.stage_task_keys;
    create temp table stage_tasks of core.task_input on commit drop;
    insert into pg_temp.stage_tasks
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.task_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    create temp table stage_task_keys on commit drop as
    select s.bitrix_id, s.source_hash from pg_temp.stage_tasks s;
    perform core.plan_tasks(p_account, p_full);
    return query select * from core.merge_tasks_staged(p_account, p_full);
    drop table pg_temp.stage_tasks;
    drop table pg_temp.stage_task_keys;
end
$$;
