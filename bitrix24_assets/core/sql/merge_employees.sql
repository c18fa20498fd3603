-- merge_employees: Bitrix24 users of one account -> core.employees.
-- Match order: (company, account, metadata->>'bitrix_id'); else an unlinked employee of the same
-- company with the same e-mail (case-insensitive) is linked; else insert. Only rows whose data
-- changed are written. Deactivated users get is_active = false; nobody is ever deleted.
-- The columns the merge writes are Bitrix24's once an employee is linked: an e-mail removed in
-- Bitrix24 is cleared here too (an unlinked employee is only linked by e-mail when the Bitrix24 user
-- has one; after that the link is the bitrix_id).
-- p_full: employees of this account absent from the batch become inactive ("removed"), except those
-- in p_keep (read but rejected by a mapper: kept with their last good values), and only if the
-- mass-removal guard (core.check_removal, p_guard) lets the removal through.
--
-- Same two phases as merge_tasks.sql: core.plan_employees compares (bitrix_id, source_hash) of the
-- whole batch (pg_temp.stage_employee_keys) with the account's linked employees and lists in
-- pg_temp.merge_employees_plan what is new, differs or (p_full) is missing; merge_employees_staged
-- then reads only those rows from pg_temp.stage_employees. One row per bitrix_id in both stages.
-- Counts as in merge_tasks.sql (live = active).

-- signatures of earlier versions (a changed argument list is a new function, not a replacement)
drop function if exists core.plan_employees(uuid, boolean);
drop function if exists core.merge_employees_staged(uuid, boolean);
drop function if exists core.merge_employees(uuid, jsonb, boolean);

create or replace function core.plan_employees(
    p_account uuid, p_full boolean, p_keep text[] default null, p_guard jsonb default null)
returns setof text
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
set work_mem = '128MB'
as $$
declare
    v_company uuid;
    v_kept boolean;
    v_stored integer;
    v_live integer;
    v_batch integer;
    v_removing integer;
    v_ids text[];
    v_targets uuid[];
    v_remove boolean[];
begin
    -- merges of one account run one at a time, so the INSERT of the merge needs no ON CONFLICT
    select b.company_id into v_company from core.begin_merge(p_account, 'employees') b;
    perform core.scratch('merge_employees_plan', '(bitrix_id text, target_id uuid, remove boolean)');
    perform pg_catalog.set_config('core.planned', 'employees', true);  -- merge_employees_staged checks it
    if not p_full then  -- statistics for the planner and a LEFT JOIN: see core.plan_tasks
        analyze pg_temp.stage_employee_keys;
        perform core.set_plan_counts(null, null);
        execute $q$
            insert into pg_temp.merge_employees_plan
            select k.bitrix_id, e.id, false
            from pg_temp.stage_employee_keys k
            left join core.employees e
              on e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
             and e.metadata ->> 'bitrix_id' = k.bitrix_id
            where e.id is null or e.source_hash is distinct from k.source_hash
        $q$ using p_account, v_company;
        return query select p.bitrix_id from pg_temp.merge_employees_plan p;
        return;
    end if;
    -- full: one pass, as in core.plan_tasks
    v_kept := core.stage_keep(p_keep);
    execute format($q$
        select count(w.target_id)::integer, (count(*) filter (where w.live))::integer,
               count(w.key)::integer, (count(*) filter (where w.work and w.key is null))::integer,
               array_agg(coalesce(w.key, w.bitrix_id)) filter (where w.work),
               array_agg(w.target_id) filter (where w.work),
               array_agg(w.key is null) filter (where w.work)
        from (
            select k.bitrix_id as key, e.bitrix_id, e.id as target_id, coalesce(e.is_active, false) as live,
                   case
                       when k.bitrix_id is null then coalesce(e.is_active, false) and not e.kept
                       else e.id is null or e.source_hash is distinct from k.source_hash
                   end as work
            from pg_temp.stage_employee_keys k
            full join (
                select e.id, e.metadata ->> 'bitrix_id' as bitrix_id, e.source_hash, e.is_active, %s as kept
                from core.employees e
                where e.company_id = $2 and e.metadata ->> 'integration_account_id' = $1::text
            ) e on e.bitrix_id = k.bitrix_id
            offset 0  -- evaluate "work" once per row, not once per aggregate that filters on it
        ) w
    $q$, case when v_kept then '(e.metadata ->> ''bitrix_id'') in (select x.bitrix_id from pg_temp.merge_keep x)'
              else 'false' end)
    into v_stored, v_live, v_batch, v_removing, v_ids, v_targets, v_remove
    using p_account, v_company;
    perform core.check_removal('employees', v_batch + coalesce(cardinality(p_keep), 0), v_live, v_removing,
                               p_guard);
    perform core.set_plan_counts(v_stored, v_live);
    insert into pg_temp.merge_employees_plan select * from unnest(v_ids, v_targets, v_remove);
    return query select p.bitrix_id from pg_temp.merge_employees_plan p where not p.remove;
end
$$;

create or replace function core.merge_employees_staged(
    p_account uuid, p_full boolean, p_counts boolean default true)
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
    v_acc text := p_account::text;
    v_total integer;
    v_ins integer := 0;
    v_upd integer := 0;
    v_rem integer := 0;
    v_ins_live integer := 0;
    v_linked integer := 0;
    v_live_delta integer := 0;
    v_before integer[] := core.plan_counts();
begin
    if coalesce(pg_catalog.current_setting('core.planned', true), '') <> 'employees' then
        raise exception using errcode = '55000', message = 'core.plan_employees must run first in this transaction';
    end if;
    select count(*) into v_total from pg_temp.stage_employee_keys;
    perform core.scratch('merge_employees_src',
                         '(like core.employee_input, target_id uuid, linked boolean, link jsonb)');
    insert into pg_temp.merge_employees_src
    select s.*, p.target_id, false as linked,
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
    set target_id = l.employee_id, linked = true
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

    -- email = s.email: an e-mail removed in Bitrix24 is removed here (see the note at the top)
    with written as (
        update core.employees e
        set email = s.email,
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
            select s.*, e.is_active as was_active,
                   (e.email, e.full_name, e.first_name, e.last_name, e.position, e.phone, e.is_active, e.metadata)
                   is not distinct from
                   (s.email, s.full_name, s.first_name, s.last_name, s.position, s.phone,
                    coalesce(s.is_active, true), e.metadata || s.link) as same
            from pg_temp.merge_employees_src s
            join core.employees e on e.id = s.target_id
        ) s
        where e.id = s.target_id
          and not (s.same and e.source_hash is not distinct from s.source_hash)
        returning s.same, s.linked, s.was_active, coalesce(s.is_active, true) as now_active
    )
    -- linked employees join the account's rows; a matched one may change its is_active
    select count(*) filter (where not w.same), count(*) filter (where w.linked),
           coalesce(sum(case when w.linked then w.now_active::integer
                             else w.now_active::integer - coalesce(w.was_active, false)::integer end), 0)
    into v_upd, v_linked, v_live_delta
    from written w;

    insert into core.employees
        (company_id, email, full_name, first_name, last_name, position, phone, is_active, metadata, source_hash)
    select v_company, s.email, s.full_name, s.first_name, s.last_name, s.position, s.phone,
           coalesce(s.is_active, true), s.link, s.source_hash
    from pg_temp.merge_employees_src s
    where s.target_id is null;
    get diagnostics v_ins = row_count;
    if v_before is not null and v_ins > 0 then
        select count(*) filter (where coalesce(s.is_active, true)) into v_ins_live
        from pg_temp.merge_employees_src s where s.target_id is null;
    end if;

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

    if v_before is not null then
        -- the full plan's counts, moved by what was written
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, v_before[1] + v_ins + v_linked,
                            v_before[2] + v_ins_live + v_live_delta - v_rem;
    elsif p_counts then
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, c.rows_in_table, c.live_rows
                     from core.account_counts(p_account, 'employees') c;
    else
        return query select v_ins, v_upd, v_total - v_ins - v_upd, v_rem, null::integer, null::integer;
    end if;
end
$$;

-- RPC entry point (Supabase backend): same two phases, rows given as a JSON array of
-- core.employee_input objects (each with "ord" and "source_hash").
create or replace function core.merge_employees(
    p_account uuid, p_rows jsonb, p_full boolean default false, p_keep text[] default null,
    p_guard jsonb default null, p_counts boolean default true)
returns table (inserted integer, updated integer, unchanged integer, removed integer, rows_in_table integer,
               live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
begin
    perform core.scratch('stage_employees', 'of core.employee_input');
    perform core.scratch('stage_employee_keys', '(bitrix_id text, source_hash uuid)');
    insert into pg_temp.stage_employees
    select distinct on (r.bitrix_id) r.*
    from jsonb_populate_recordset(null::core.employee_input, p_rows) r
    where r.bitrix_id is not null
    order by r.bitrix_id, r.ord desc;
    insert into pg_temp.stage_employee_keys select s.bitrix_id, s.source_hash from pg_temp.stage_employees s;
    perform core.plan_employees(p_account, p_full, p_keep, p_guard);
    return query select * from core.merge_employees_staged(p_account, p_full, p_counts);
end
$$;
