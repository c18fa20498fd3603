-- merge_tasks: Bitrix24 tasks of one account -> core.tasks, unique on (account, bitrix_id).
-- Responsible and creator Bitrix user ids are resolved to employee ids of the same account in the
-- same statement. Unchanged rows are filtered out before the INSERT ... ON CONFLICT, so a rerun
-- with the same data neither writes nor locks a single row.
-- p_full: tasks of this account absent from the batch are marked is_deleted ("removed").

-- The *_staged function expects pg_temp stage table with ONE row per bitrix_id (the callers dedupe:
-- PostgresStore in Python, the RPC wrapper below with DISTINCT ON), so it needs no sort.
--
-- Shape (chosen by measurement, see bench/core_merge.py): one FULL JOIN of the batch with the
-- account's stored rows finds new, changed and (for p_full) missing rows at once into a small temp
-- table; plain INSERT / UPDATE statements then touch only those. A rerun with unchanged data thus
-- costs one hash join and writes nothing. Merges of one account are serialised by an advisory
-- lock, so the INSERT needs no ON CONFLICT (speculative insertion cost ~40% of a first load).
create or replace function core.merge_tasks_staged(p_account uuid, p_full boolean)
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
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.tasks'), pg_catalog.hashtext(p_account::text));
    select count(*) into v_total from pg_temp.stage_tasks;

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
             metadata)
        select core.row_id(p_account, s.bitrix_id), v_company, p_account, s.bitrix_id, s.title, s.description,
               s.status, s.status_code, s.priority, s.deadline, s.start_date_plan, s.end_date_plan, s.closed_at,
               s.created_at_source, s.changed_at_source, r.id, c.id, s.responsible_bitrix_id,
               s.created_by_bitrix_id, s.group_id, false, coalesce(s.metadata, '{}'::jsonb)
        from pg_temp.stage_tasks s
        left join people r on r.bitrix_id = s.responsible_bitrix_id
        left join people c on c.bitrix_id = s.created_by_bitrix_id;
        get diagnostics v_ins = row_count;
        return query select v_ins, 0, v_total - v_ins, 0;
        return;
    end if;

    drop table if exists pg_temp.merge_tasks_diff;
    -- full: a FULL JOIN also yields the account's rows missing from the batch; otherwise a LEFT JOIN,
    -- so a small batch (a webhook, one Supabase chunk) need not read all of the account's rows.
    execute format($q$
        create temp table merge_tasks_diff on commit drop as
        with people as (
            select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
            from core.employees e
            where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
        ), stored as (
            select t.id, t.bitrix_id, t.title, t.description, t.status, t.status_code, t.priority, t.deadline,
                   t.start_date_plan, t.end_date_plan, t.closed_at, t.created_at_source, t.changed_at_source,
                   t.responsible_id, t.created_by_id, t.responsible_bitrix_id, t.created_by_bitrix_id, t.group_id,
                   t.is_deleted, t.metadata
            from core.tasks t
            where t.integration_account_id = $1
        )
        select s.*, r.id as responsible_id, c.id as created_by_id, t.id as target_id
        from pg_temp.stage_tasks s
        %s join stored t on t.bitrix_id = s.bitrix_id
        left join people r on r.bitrix_id = s.responsible_bitrix_id
        left join people c on c.bitrix_id = s.created_by_bitrix_id
        where (s.bitrix_id is null and not t.is_deleted)
           or t.id is null
           or (t.title, t.description, t.status, t.status_code, t.priority, t.deadline, t.start_date_plan,
               t.end_date_plan, t.closed_at, t.created_at_source, t.changed_at_source, t.responsible_id,
               t.created_by_id, t.responsible_bitrix_id, t.created_by_bitrix_id, t.group_id, t.is_deleted,
               t.metadata)
              is distinct from
              (s.title, s.description, s.status, s.status_code, s.priority, s.deadline, s.start_date_plan,
               s.end_date_plan, s.closed_at, s.created_at_source, s.changed_at_source, r.id,
               c.id, s.responsible_bitrix_id, s.created_by_bitrix_id, s.group_id, false,
               coalesce(s.metadata, '{}'::jsonb))
    $q$, case when p_full then 'full' else 'left' end) using p_account, v_company;

    insert into core.tasks
        (id, company_id, integration_account_id, bitrix_id, title, description, status, status_code, priority,
         deadline, start_date_plan, end_date_plan, closed_at, created_at_source, changed_at_source,
         responsible_id, created_by_id, responsible_bitrix_id, created_by_bitrix_id, group_id, is_deleted,
         metadata)
    select core.row_id(p_account, d.bitrix_id), v_company, p_account, d.bitrix_id, d.title, d.description,
           d.status, d.status_code, d.priority, d.deadline, d.start_date_plan, d.end_date_plan, d.closed_at,
           d.created_at_source, d.changed_at_source, d.responsible_id, d.created_by_id, d.responsible_bitrix_id,
           d.created_by_bitrix_id, d.group_id, false, coalesce(d.metadata, '{}'::jsonb)
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
        metadata = coalesce(d.metadata, '{}'::jsonb), updated_at = now()
    from pg_temp.merge_tasks_diff d
    where d.target_id is not null and d.bitrix_id is not null and t.id = d.target_id;
    get diagnostics v_upd = row_count;

    if p_full then
        update core.tasks t
        set is_deleted = true, updated_at = now()
        from pg_temp.merge_tasks_diff d
        where d.bitrix_id is null and t.id = d.target_id;
        get diagnostics v_rem = row_count;
    end if;

    drop table pg_temp.merge_tasks_diff;
    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same merge, rows given as a JSON array of
-- core.task_input objects (each with "ord").
create or replace function core.merge_tasks(p_account uuid, p_rows jsonb, p_full boolean default false)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_tasks;
    create temp table stage_tasks of core.task_input on commit drop;
    insert into pg_temp.stage_tasks
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.task_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    return query select * from core.merge_tasks_staged(p_account, p_full);
    drop table pg_temp.stage_tasks;
end
$$;
