-- merge_tasks: Bitrix24 tasks of one account -> core.tasks, unique on (account, bitrix_id).
-- Responsible and creator Bitrix user ids are resolved to employee ids of the same account in the
-- same statement. Unchanged rows are filtered out before the INSERT ... ON CONFLICT, so a rerun
-- with the same data neither writes nor locks a single row.
-- p_full: tasks of this account absent from the batch are marked is_deleted ("removed").

-- The *_staged function expects pg_temp stage table with ONE row per bitrix_id (the callers dedupe:
-- PostgresStore in Python, the RPC wrapper below with DISTINCT ON), so it needs no sort.
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
    with people as (
        select e.metadata ->> 'bitrix_id' as bitrix_id, e.id
        from core.employees e
        where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
    ), src as (
        select s.* from pg_temp.stage_tasks s
    ), resolved as (
        select src.*, r.id as responsible_id, c.id as created_by_id
        from src
        left join people r on r.bitrix_id = src.responsible_bitrix_id
        left join people c on c.bitrix_id = src.created_by_bitrix_id
    ), changed as (
        select n.*
        from resolved n
        left join core.tasks t on t.integration_account_id = p_account and t.bitrix_id = n.bitrix_id
        where t.id is null
           or (t.title, t.description, t.status, t.status_code, t.priority, t.deadline, t.start_date_plan,
               t.end_date_plan, t.closed_at, t.created_at_source, t.changed_at_source, t.responsible_id,
               t.created_by_id, t.responsible_bitrix_id, t.created_by_bitrix_id, t.group_id, t.is_deleted,
               t.metadata)
              is distinct from
              (n.title, n.description, n.status, n.status_code, n.priority, n.deadline, n.start_date_plan,
               n.end_date_plan, n.closed_at, n.created_at_source, n.changed_at_source, n.responsible_id,
               n.created_by_id, n.responsible_bitrix_id, n.created_by_bitrix_id, n.group_id, false,
               coalesce(n.metadata, '{}'::jsonb))
    ), written as (
        insert into core.tasks as t
            (id, company_id, integration_account_id, bitrix_id, title, description, status, status_code, priority,
             deadline, start_date_plan, end_date_plan, closed_at, created_at_source, changed_at_source,
             responsible_id, created_by_id, responsible_bitrix_id, created_by_bitrix_id, group_id, is_deleted,
             metadata)
        select core.row_id(p_account, c.bitrix_id), v_company, p_account, c.bitrix_id, c.title, c.description, c.status, c.status_code, c.priority,
               c.deadline, c.start_date_plan, c.end_date_plan, c.closed_at, c.created_at_source,
               c.changed_at_source, c.responsible_id, c.created_by_id, c.responsible_bitrix_id,
               c.created_by_bitrix_id, c.group_id, false, coalesce(c.metadata, '{}'::jsonb)
        from changed c
        on conflict (integration_account_id, bitrix_id) do update
        set title = excluded.title, description = excluded.description, status = excluded.status,
            status_code = excluded.status_code, priority = excluded.priority, deadline = excluded.deadline,
            start_date_plan = excluded.start_date_plan, end_date_plan = excluded.end_date_plan,
            closed_at = excluded.closed_at, created_at_source = excluded.created_at_source,
            changed_at_source = excluded.changed_at_source, responsible_id = excluded.responsible_id,
            created_by_id = excluded.created_by_id, responsible_bitrix_id = excluded.responsible_bitrix_id,
            created_by_bitrix_id = excluded.created_by_bitrix_id, group_id = excluded.group_id,
            is_deleted = false, metadata = excluded.metadata, updated_at = now()
        returning (t.xmax = 0) as is_insert
    )
    select (select count(*) from src),
           count(*) filter (where w.is_insert),
           count(*) filter (where not w.is_insert)
    into v_total, v_ins, v_upd
    from written w;

    if p_full then
        update core.tasks t
        set is_deleted = true, updated_at = now()
        where t.integration_account_id = p_account
          and not t.is_deleted
          and not exists (select 1 from pg_temp.stage_tasks s where s.bitrix_id = t.bitrix_id);
        get diagnostics v_rem = row_count;
    end if;

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
