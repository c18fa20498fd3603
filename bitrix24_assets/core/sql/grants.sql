-- Access to what the integration created, applied by EVERY migrate (the migrator calls
-- core.apply_access() after the migrations and function files), so it is idempotent and a
-- service_role created after the first migrate gets its grants on the next one.
--
-- Only objects the integration created are touched. The migrator records them in
-- core.schema_migrations when it creates them (kind 'table': tables that did not exist before that
-- migrate; kind 'function': functions its SQL files wrote). A table the platform had before (say
-- core.companies or core.employees with its own policies) keeps its row-level security, policies
-- and grants exactly as they were; the integration only adds the columns and indexes it needs.
--
-- On the integration's tables: row-level security enabled, with no policies, so only table owners
-- and roles with BYPASSRLS (Supabase's service_role) read or write them; anon/authenticated see no
-- rows (integration_accounts holds credentials). On its functions: EXECUTE revoked from PUBLIC.
-- Everything granted to service_role if that role exists (plain Postgres has none).
-- Returns one line per change (nothing when all was in place), plus a line per platform table
-- on which service_role lacks what the sync needs: the fix is the platform's to make.
create or replace function core.apply_access()
returns setof text
language plpgsql
set search_path = ''
as $$
declare
    v_service boolean := exists (select 1 from pg_catalog.pg_roles r where r.rolname = 'service_role');
    v_tables regclass[];
    v_functions regprocedure[];
    v_changed text[];
    v_missing text[];
    t regclass;
    f regprocedure;
    s regclass;
    v_need text[];
    v_type text;
begin
    select coalesce(array_agg(pg_catalog.to_regclass(m.name) order by m.name), '{}') into v_tables
    from core.schema_migrations m
    where m.kind = 'table' and pg_catalog.to_regclass(m.name) is not null;
    select coalesce(array_agg(pg_catalog.to_regprocedure(m.name) order by m.name), '{}') into v_functions
    from core.schema_migrations m
    where m.kind = 'function' and pg_catalog.to_regprocedure(m.name) is not null;

    v_changed := '{}';
    foreach t in array v_tables loop
        if not (select c.relrowsecurity from pg_catalog.pg_class c where c.oid = t) then
            execute format('alter table %s enable row level security', t);
            v_changed := v_changed || t::text;
        end if;
    end loop;
    if cardinality(v_changed) > 0 then
        return next format('enabled row-level security on %s', array_to_string(v_changed, ', '));
    end if;

    v_changed := '{}';
    foreach f in array v_functions loop
        if pg_catalog.has_function_privilege('public', f, 'execute') then
            execute format('revoke execute on function %s from public', f);
            v_changed := v_changed || f::text;
        end if;
    end loop;
    if cardinality(v_changed) > 0 then
        return next format('revoked EXECUTE from PUBLIC on %s functions of the integration', cardinality(v_changed));
    end if;

    if not v_service then
        return;
    end if;

    if not pg_catalog.has_schema_privilege('service_role', 'core', 'usage') then
        grant usage on schema core to service_role;
        return next 'granted service_role USAGE on schema core';
    end if;

    v_changed := '{}';
    foreach t in array v_tables loop
        if not (pg_catalog.has_table_privilege('service_role', t, 'select')
                and pg_catalog.has_table_privilege('service_role', t, 'insert')
                and pg_catalog.has_table_privilege('service_role', t, 'update')
                and pg_catalog.has_table_privilege('service_role', t, 'delete')) then
            execute format('grant all privileges on table %s to service_role', t);
            v_changed := v_changed || t::text;
        end if;
        -- sequences of the table's serial/identity columns, should a later migration add one
        for s in
            select d.objid::regclass from pg_catalog.pg_depend d
            join pg_catalog.pg_class c on c.oid = d.objid and c.relkind = 'S'
            where d.refobjid = t and d.classid = 'pg_catalog.pg_class'::regclass and d.deptype in ('a', 'i')
        loop
            if not pg_catalog.has_sequence_privilege('service_role', s, 'usage') then
                execute format('grant usage, select, update on sequence %s to service_role', s);
            end if;
        end loop;
    end loop;
    if cardinality(v_changed) > 0 then
        return next format('granted service_role all privileges on %s', array_to_string(v_changed, ', '));
    end if;

    v_changed := '{}';
    foreach f in array v_functions loop
        if not pg_catalog.has_function_privilege('service_role', f, 'execute') then
            execute format('grant execute on function %s to service_role', f);
            v_changed := v_changed || f::text;
        end if;
    end loop;
    if cardinality(v_changed) > 0 then
        return next format('granted service_role EXECUTE on %s functions of the integration', cardinality(v_changed));
    end if;

    -- the merges' input row types (PUBLIC has USAGE on types by default; a platform may revoke it)
    foreach v_type in array array['core.employee_input', 'core.task_input', 'core.event_input'] loop
        if pg_catalog.to_regtype(v_type) is not null
           and not pg_catalog.has_type_privilege('service_role', pg_catalog.to_regtype(v_type), 'usage') then
            execute format('grant usage on type %s to service_role', pg_catalog.to_regtype(v_type));
            return next format('granted service_role USAGE on type %s', v_type);
        end if;
    end loop;

    -- platform tables the sync writes: reported, never changed
    for t, v_need in
        select pg_catalog.to_regclass(p.name), p.need
        from (values ('core.companies', array['select', 'insert']),
                     ('core.employees', array['select', 'insert', 'update'])) p(name, need)
        where pg_catalog.to_regclass(p.name) is not null and not (pg_catalog.to_regclass(p.name) = any (v_tables))
    loop
        select coalesce(array_agg(pg_catalog.upper(n) order by o), '{}') into v_missing
        from unnest(v_need) with ordinality u(n, o)
        where not pg_catalog.has_table_privilege('service_role', t, n);
        if cardinality(v_missing) > 0 then
            return next format('%s is the platform''s table (it existed before the integration): its row-level security,'
                               ' policies and grants were left as they are; service_role lacks %s on it, which the'
                               ' sync needs: grant %s on %s to service_role', t, array_to_string(v_missing, ', '),
                               array_to_string(v_missing, ', '), t);
        end if;
    end loop;
end
$$;
