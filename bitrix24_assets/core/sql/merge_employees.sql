-- merge_employees: Bitrix24 users of one account -> core.employees.
-- Match order: (company, account, metadata->>'bitrix_id'); else an unlinked employee of the same
-- company with the same e-mail (case-insensitive) is linked; else insert. Only rows whose data
-- changed are written. Deactivated users get is_active = false; nobody is ever deleted.
-- p_full: employees of this account absent from the batch become inactive ("removed").

-- The *_staged function expects pg_temp stage table with ONE row per bitrix_id (the callers dedupe:
-- PostgresStore in Python, the RPC wrapper below with DISTINCT ON), so it needs no sort.
create or replace function core.merge_employees_staged(p_account uuid, p_full boolean)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
set work_mem = '128MB'
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_acc text := p_account::text;
    v_total integer;
    v_ins integer := 0;
    v_upd integer := 0;
    v_rem integer := 0;
begin
    -- merges of one account run one at a time, so the INSERT below needs no ON CONFLICT
    -- (speculative insertion made it the slowest step of a first load)
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.employees'), pg_catalog.hashtext(v_acc));
    drop table if exists pg_temp.merge_employees_src;
    create temp table merge_employees_src on commit drop as
    select s.*, e.id as target_id,
           coalesce(s.metadata, '{}'::jsonb) || jsonb_build_object(
               'bitrix_id', s.bitrix_id,
               'integration_account_id', v_acc,
               'bitrix_departments', coalesce(s.departments, '[]'::jsonb),
               'bitrix_active', s.is_active) as link
    from pg_temp.stage_employees s
    left join core.employees e
        on e.company_id = v_company
       and e.metadata ->> 'integration_account_id' = v_acc
       and e.metadata ->> 'bitrix_id' = s.bitrix_id;
    get diagnostics v_total = row_count;

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

    update core.employees e
    set email = coalesce(s.email, e.email),
        full_name = s.full_name,
        first_name = s.first_name,
        last_name = s.last_name,
        position = s.position,
        phone = s.phone,
        is_active = coalesce(s.is_active, true),
        metadata = e.metadata || s.link,
        updated_at = now()
    from pg_temp.merge_employees_src s
    where e.id = s.target_id
      and (e.email, e.full_name, e.first_name, e.last_name, e.position, e.phone, e.is_active, e.metadata)
          is distinct from
          (coalesce(s.email, e.email), s.full_name, s.first_name, s.last_name, s.position, s.phone,
           coalesce(s.is_active, true), e.metadata || s.link);
    get diagnostics v_upd = row_count;

    insert into core.employees
        (company_id, email, full_name, first_name, last_name, position, phone, is_active, metadata)
    select v_company, s.email, s.full_name, s.first_name, s.last_name, s.position, s.phone,
           coalesce(s.is_active, true), s.link
    from pg_temp.merge_employees_src s
    where s.target_id is null;
    get diagnostics v_ins = row_count;

    if p_full then
        update core.employees e
        set is_active = false,
            metadata = e.metadata || '{"bitrix_active": false}'::jsonb,
            updated_at = now()
        where e.company_id = v_company
          and e.metadata ->> 'integration_account_id' = v_acc
          and e.is_active
          and not exists (
              select 1 from pg_temp.merge_employees_src s where s.bitrix_id = e.metadata ->> 'bitrix_id');
        get diagnostics v_rem = row_count;
    end if;

    drop table pg_temp.merge_employees_src;
    return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem;
end
$$;

-- RPC entry point (Supabase backend): same merge, rows given as a JSON array of
-- core.employee_input objects (each with "ord").
create or replace function core.merge_employees(p_account uuid, p_rows jsonb, p_full boolean default false)
returns table (inserted integer, updated integer, unchanged integer, removed integer)
language plpgsql
set search_path = ''
as $$
begin
    drop table if exists pg_temp.stage_employees;
    create temp table stage_employees of core.employee_input on commit drop;
    insert into pg_temp.stage_employees
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.employee_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    return query select * from core.merge_employees_staged(p_account, p_full);
    drop table pg_temp.stage_employees;
end
$$;
