-- merge_departments: Bitrix24 departments of one account -> core.departments, unique on
-- (account, bitrix_id), plus the employees' memberships (core.employee_departments).
-- One function for both backends: the Postgres backend passes the rows as one jsonb parameter, the
-- Supabase backend as the RPC body. A portal has tens to a few thousand departments, so the batch
-- is one statement's JSON and one transaction (no staging tables, no fingerprints: comparing the
-- few columns is cheaper than shipping hashes).
-- p_rows: [{"bitrix_id", "name", "parent_bitrix_id", "head_bitrix_id", "sort", "metadata", "ord"}];
-- the last row of a bitrix_id wins. p_full: departments of this account absent from the batch are
-- marked is_deleted ("removed"), except those in p_keep (read but rejected by the mapper: kept with
-- their last good values), and only if the mass-removal guard (core.check_removal, p_guard) lets the
-- removal through. Parent and head are resolved to department and employee ids of the same account
-- after every merge (a head synced later is resolved by the next merge of either entity).

drop function if exists core.merge_departments(uuid, jsonb, boolean, text[], jsonb);

create or replace function core.merge_departments(
    p_account uuid, p_rows jsonb, p_full boolean default false, p_keep text[] default null,
    p_guard jsonb default null)
returns table (inserted integer, updated integer, unchanged integer, removed integer, rows_in_table integer,
               live_rows integer)
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_keep text[] := coalesce(p_keep, '{}'::text[]);
    v_batch integer;
    v_live integer;
    v_removing integer := 0;
    v_ins integer := 0;
    v_upd integer := 0;
    v_rem integer := 0;
begin
    -- merges of one account's departments run one at a time (the INSERT needs no ON CONFLICT)
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.departments'),
                                             pg_catalog.hashtext(p_account::text));
    perform core.scratch('merge_departments_src', '(bitrix_id text, name text, parent_bitrix_id text, '
                                                  'head_bitrix_id text, sort integer, metadata jsonb)');
    insert into pg_temp.merge_departments_src
    select distinct on (r.bitrix_id) r.bitrix_id, r.name, r.parent_bitrix_id, r.head_bitrix_id, r.sort, r.metadata
    from (
        select e.value ->> 'bitrix_id' as bitrix_id, e.value ->> 'name' as name,
               e.value ->> 'parent_bitrix_id' as parent_bitrix_id, e.value ->> 'head_bitrix_id' as head_bitrix_id,
               (e.value ->> 'sort')::integer as sort,
               case when pg_catalog.jsonb_typeof(e.value -> 'metadata') = 'object' then e.value -> 'metadata'
                    else '{}'::jsonb end as metadata,
               coalesce((e.value ->> 'ord')::bigint, e.n) as ord
        from pg_catalog.jsonb_array_elements(
                 case when pg_catalog.jsonb_typeof(p_rows) = 'array' then p_rows else '[]'::jsonb end)
             with ordinality as e(value, n)
    ) r
    where r.bitrix_id is not null and not (r.bitrix_id = any (v_keep))
    order by r.bitrix_id, r.ord desc;
    analyze pg_temp.merge_departments_src;  -- a temp table has no statistics otherwise
    select count(*)::integer into v_batch from pg_temp.merge_departments_src;

    if p_full then
        select (count(*) filter (where not d.is_deleted))::integer,
               (count(*) filter (where not d.is_deleted and not (d.bitrix_id = any (v_keep))
                                 and not exists (select 1 from pg_temp.merge_departments_src s
                                                 where s.bitrix_id = d.bitrix_id)))::integer
        into v_live, v_removing
        from core.departments d
        where d.integration_account_id = p_account;
        perform core.check_removal('departments', v_batch + pg_catalog.cardinality(v_keep), v_live, v_removing,
                                   p_guard);
    end if;

    insert into core.departments
        (id, company_id, integration_account_id, bitrix_id, name, parent_bitrix_id, head_bitrix_id, sort, metadata)
    select core.row_id(p_account, s.bitrix_id), v_company, p_account, s.bitrix_id, s.name, s.parent_bitrix_id,
           s.head_bitrix_id, s.sort, s.metadata
    from pg_temp.merge_departments_src s
    where not exists (select 1 from core.departments d
                      where d.integration_account_id = p_account and d.bitrix_id = s.bitrix_id);
    get diagnostics v_ins = row_count;

    -- changed rows, and deleted ones that are back (rows just inserted are equal, so untouched)
    update core.departments d
    set name = s.name, parent_bitrix_id = s.parent_bitrix_id, head_bitrix_id = s.head_bitrix_id, sort = s.sort,
        metadata = s.metadata, is_deleted = false, updated_at = now()
    from pg_temp.merge_departments_src s
    where d.integration_account_id = p_account and d.bitrix_id = s.bitrix_id
      and (d.name, d.parent_bitrix_id, d.head_bitrix_id, d.sort, d.metadata, d.is_deleted)
          is distinct from (s.name, s.parent_bitrix_id, s.head_bitrix_id, s.sort, s.metadata, false);
    get diagnostics v_upd = row_count;

    if p_full and v_removing > 0 then
        update core.departments d
        set is_deleted = true, updated_at = now()
        where d.integration_account_id = p_account and not d.is_deleted and not (d.bitrix_id = any (v_keep))
          and not exists (select 1 from pg_temp.merge_departments_src s where s.bitrix_id = d.bitrix_id);
        get diagnostics v_rem = row_count;
    end if;

    perform core.resolve_departments(p_account);
    perform core.link_employee_departments(p_account);
    return query
    select v_ins, v_upd, v_batch - v_ins - v_upd, v_rem, count(*)::integer,
           (count(*) filter (where not d.is_deleted))::integer
    from core.departments d
    where d.integration_account_id = p_account;
end
$$;

-- parent_id and head_id of the account's departments from their Bitrix ids: the parent among the
-- account's departments (deleted ones included: the row is still there), the head among the
-- account's employees. Only rows whose links change are written. Returns how many.
create or replace function core.resolve_departments(p_account uuid)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_count integer;
begin
    -- LATERAL: one probe of each unique key per department. A plain join is planned from the
    -- statistics of a table no autovacuum has analysed yet (a new account's first merge) and then
    -- scanned every employee of the account per department (0.4 s for 400 departments, 10k people).
    update core.departments d
    set parent_id = r.parent_id, head_id = r.head_id
    from (
        select d2.id, p.id as parent_id, e.id as head_id
        from core.departments d2
        left join lateral (
            select p.id from core.departments p
            where p.integration_account_id = p_account and p.bitrix_id = d2.parent_bitrix_id
        ) p on true
        left join lateral (
            select e.id from core.employees e
            where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
              and e.metadata ->> 'bitrix_id' = d2.head_bitrix_id
            limit 1
        ) e on true
        where d2.integration_account_id = p_account
    ) r
    where d.id = r.id and (d.parent_id, d.head_id) is distinct from (r.parent_id, r.head_id);
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

-- The account's memberships as the employees' Bitrix24 department lists (metadata
-- 'bitrix_departments', written by the employees merge) say, for the account's live departments:
-- missing ones are added, stale ones (the employee moved, the department was deleted) removed.
-- Called at the end of every departments merge and after every employees merge; idempotent.
-- Returns the memberships added plus removed.
create or replace function core.link_employee_departments(p_account uuid)
returns integer
language plpgsql
set search_path = ''
set plan_cache_mode = force_custom_plan  -- reads session temp tables: see core.scratch
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_added integer;
    v_removed integer;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.employee_departments'),
                                             pg_catalog.hashtext(p_account::text));
    if not exists (select 1 from core.departments d where d.integration_account_id = p_account)
       and not exists (select 1 from core.employee_departments m where m.integration_account_id = p_account) then
        return 0;  -- departments never synced (no scope, turned off): nothing to link, nothing to read
    end if;
    perform core.scratch('link_wanted', '(employee_id uuid, department_id uuid)');
    insert into pg_temp.link_wanted
    select distinct e.id as employee_id, d.id as department_id
    from core.employees e
    cross join lateral pg_catalog.jsonb_array_elements_text(
        case when pg_catalog.jsonb_typeof(e.metadata -> 'bitrix_departments') = 'array'
             then e.metadata -> 'bitrix_departments' else '[]'::jsonb end) x(bitrix_id)
    join core.departments d
      on d.integration_account_id = p_account and d.bitrix_id = x.bitrix_id and not d.is_deleted
    where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text;
    delete from core.employee_departments m
    where m.integration_account_id = p_account
      and not exists (select 1 from pg_temp.link_wanted w
                      where w.employee_id = m.employee_id and w.department_id = m.department_id);
    get diagnostics v_removed = row_count;
    -- on conflict, not an anti-join: the temp table has no statistics, and the planner answered the
    -- anti-join with a scan of every account's memberships, so each portal's link grew with the fleet
    insert into core.employee_departments (integration_account_id, employee_id, department_id)
    select p_account, w.employee_id, w.department_id
    from pg_temp.link_wanted w
    on conflict (employee_id, department_id) do nothing;
    get diagnostics v_added = row_count;
    return v_added + v_removed;
end
$$;

-- The account's live department tree, roots first: each department with its depth (0 for a root)
-- and the names from the root down to it. A department whose parent is missing or deleted is a
-- root; a loop in the parents (a portal's bad data) ends the walk instead of recursing forever.
-- RPC-callable on Supabase (POST /rest/v1/rpc/department_tree {"p_account": ...}).
create or replace function core.department_tree(p_account uuid)
returns table (id uuid, bitrix_id text, name text, parent_id uuid, head_id uuid, depth integer, path text[])
language sql stable
set search_path = ''
as $$
    with recursive live as (
        select d.id, d.bitrix_id, d.name, d.parent_id, d.head_id, d.sort
        from core.departments d
        where d.integration_account_id = p_account and not d.is_deleted
    ), tree as (
        select l.id, l.bitrix_id, l.name, l.parent_id, l.head_id, 0 as depth,
               array[coalesce(l.name, l.bitrix_id)] as path, array[l.id] as seen,
               array[pg_catalog.lpad(coalesce(l.sort, 0)::text, 10, '0') || l.bitrix_id] as ord
        from live l
        where l.parent_id is null or not exists (select 1 from live p where p.id = l.parent_id)
        union all
        select c.id, c.bitrix_id, c.name, c.parent_id, c.head_id, t.depth + 1, t.path || coalesce(c.name, c.bitrix_id),
               t.seen || c.id, t.ord || (pg_catalog.lpad(coalesce(c.sort, 0)::text, 10, '0') || c.bitrix_id)
        from tree t
        join live c on c.parent_id = t.id
        where not (c.id = any (t.seen))
    )
    select t.id, t.bitrix_id, t.name, t.parent_id, t.head_id, t.depth, t.path from tree t order by t.ord;
$$;

-- What the core_departments_tree_resolved check reports for an account: live departments whose
-- parent is not a live department of the account (the tree is broken there: a read that saw the
-- child but not its parent, or a parent deleted under a live child), and live departments whose
-- head is not an employee of the account (a guest, or a user not synced yet).
create or replace function core.department_problems(p_account uuid)
returns table (orphans integer, heads_not_employees integer)
language sql stable
set search_path = ''
as $$
    select (count(*) filter (where d.parent_bitrix_id is not null
                             and (p.id is null or p.is_deleted)))::integer,
           (count(*) filter (where d.head_bitrix_id is not null and d.head_id is null))::integer
    from core.departments d
    left join core.departments p on p.id = d.parent_id
    where d.integration_account_id = p_account and not d.is_deleted;
$$;
