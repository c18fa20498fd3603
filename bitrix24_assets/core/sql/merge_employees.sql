-- merge_employees: Bitrix24 users of one account -> core.employees.
-- Match order: (company, account, metadata->>'bitrix_id'); else an unlinked employee of the same
-- company with the same e-mail (case-insensitive) is linked; else insert. Only rows whose data
-- changed are written. Deactivated users get is_active = false; nobody is ever deleted.
-- p_full: employees of this account absent from the batch become inactive ("removed").
--
-- Same two phases as merge_tasks.sql: core.plan_employees compares (bitrix_id, source_hash) of the
-- whole batch (pg_temp.stage_employee_keys) with the account's linked employees and lists in
-- pg_temp.merge_employees_plan what is new, differs or (p_full) is missing; merge_employees_staged
-- then reads only those rows from pg_temp.stage_employees. One row per bitrix_id in both stages.

create or replace function core.plan_employees(p_account uuid, p_full boolean)
returns setof text
language plpgsql
set search_path = ''
set work_mem = '128MB'
as $$
declare
    v_company uuid;
begin
    -- merges of one account run one at a time, so the INSERT of the merge needs no ON CONFLICT
    select b.company_id into v_company from core.begin_merge(p_account, 'employees') b;
    if not p_full then  -- statistics for the planner: see core.plan_tasks
        analyze pg_temp.stage_employee_keys;
    end if;
    drop table if exists pg_temp.merge_employees_plan;
    create temp table merge_employees_plan (bitrix_id text, target_id uuid, remove boolean) on commit drop;
    execute format($q$
        insert into pg_temp.merge_employees_plan
        select coalesce(k.bitrix_id, e.bitrix_id), e.id, k.bitrix_id is null
        from pg_temp.stage_employee_keys k
        %s join (
            select e.id, e.metadata ->> 'bitrix_id' as bitrix_id, e.source_hash, e.is_active
            from core.employees e
            where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
        ) e on e.bitrix_id = k.bitrix_id
        where case
            when k.bitrix_id is null then e.is_active
            else e.id is null or e.source_hash is distinct from k.source_hash
        end
    $q$, case when p_full then 'full' else 'left' end) using p_account, v_company;
    return query select p.bitrix_id from pg_temp.merge_employees_plan p where not p.remove;
end
$$;

create or replace function core.merge_employees_staged(p_account uuid, p_full boolean)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
set work_mem = '128MB'
set core.merging = 'on'  -- our own writes keep their fingerprint (see core.clear_source_hash)
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_acc text := p_account::text;
    v_total integer;
    v_ins integer := 0;
    v_upd integer := 0;
    v_rem integer := 0;
begin
    if to_regclass('pg_temp.merge_employees_plan') is null then
        raise exception using errcode = '55000', message = 'core.plan_employees must run first in this transaction';
    end if;
    select count(*) into v_total from pg_temp.stage_employee_keys;
    drop table if exists pg_temp.merge_employees_src;
    create temp table merge_employees_src on commit drop as
    select s.*, p.target_id,
           coalesce(s.metadata, '{}'::jsonb) || jsonb_build_object(
               'bitrix_id', s.bitrix_id,
               'integration_account_id', v_acc,
               'bitrix_departments', coalesce(s.departments, '[]'::jsonb),
               'bitrix_active', s.is_active) as link
    from pg_temp.merge_employees_plan p
    join pg_temp.stage_employees s on s.bitrix_id = p.bitrix_id
    where not p.remove;

    -- link unlinked employees of the same company by e-mail (each employee at most once)
    update pg_temp.merge_employees_src s
    set target_id = l.employee_id
    from (
        select distinct on (c.bitrix_id) c.bitrix_id, c.employee_id
        from (
            select distinct on (e.id) e.id as employee_id, s2.bitrix_id
            from pg_temp.merge_employees_src s2
            join core.employees e
              on e.company_id = v_company
             and lower(e.email) = lower(s2.email)
             and not (e.metadata ? 'bitrix_id')
            where s2.target_id is null and coalesce(s2.email, '') <> ''
            order by e.id, s2.bitrix_id
        ) c
        order by c.bitrix_id, c.employee_id
    ) l
    where s.bitrix_id = l.bitrix_id;

    with written as (
        update core.employees e
        set email = coalesce(s.email, e.email),
            full_name = s.full_name,
            first_name = s.first_name,
            last_name = s.last_name,
            position = s.position,
            phone = s.phone,
            is_active = coalesce(s.is_active, true),
            metadata = e.metadata || s.link,
            source_hash = s.source_hash,
            -- same data under another (or a cleared) fingerprint: only the fingerprint is stored
            updated_at = case when s.same then e.updated_at else now() end
        from (
            select s.*,
                   (e.email, e.full_name, e.first_name, e.last_name, e.position, e.phone, e.is_active, e.metadata)
                   is not distinct from
                   (coalesce(s.email, e.email), s.full_name, s.first_name, s.last_name, s.position, s.phone,
                    coalesce(s.is_active, true), e.metadata || s.link) as same
            from pg_temp.merge_employees_src s
            join core.employees e on e.id = s.target_id
        ) s
        where e.id = s.target_id
          and not (s.same and e.source_hash is not distinct from s.source_hash)
        returning s.same
    )
    select count(*) filter (where not w.same) into v_upd from written w;

    insert into core.employees
        (company_id, email, full_name, first_name, last_name, position, phone, is_active, metadata, source_hash)
    select v_company, s.email, s.full_name, s.first_name, s.last_name, s.position, s.phone,
           coalesce(s.is_active, true), s.link, s.source_hash
    from pg_temp.merge_employees_src s
    where s.target_id is null;
    get diagnostics v_ins = row_count;

    if p_full then
        -- source_hash = null: an employee who comes back is compared in full
        update core.employees e
        set is_active = false,
            metadata = e.metadata || '{"bitrix_active": false}'::jsonb,
            source_hash = null,
            updated_at = now()
        from pg_temp.merge_employees_plan p
        where p.remove and e.id = p.target_id;
        get diagnostics v_rem = row_count;
    end if;

    drop table pg_temp.merge_employees_src;
    drop table pg_temp.merge_employees_plan;
    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.employee_input objects (each with "ord" and "source_hash").
create or replace function core.merge_employees(p_account uuid, p_rows jsonb, p_full boolean default false)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_employees;
    drop table if exists pg_temp.stage_employee_keys;
    create temp table stage_employees of core.employee_input on commit drop;
    insert into pg_temp.stage_employees
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.employee_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    create temp table stage_employee_keys on commit drop as
    select s.bitrix_id, s.source_hash from pg_temp.stage_employees s;
    perform core.plan_employees(p_account, p_full);
    return query select * from core.merge_employees_staged(p_account, p_full);
    drop table pg_temp.stage_employees;
    drop table pg_temp.stage_employee_keys;
end
$$;
