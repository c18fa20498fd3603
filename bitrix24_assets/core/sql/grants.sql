-- Grants and row-level security, applied after every migration run (the functions above are
-- re-created each time, so their grants must follow). Roles are only touched when they exist,
-- so this also runs on plain Postgres. RLS is enabled with no policies: only table owners and
-- roles with BYPASSRLS (Supabase's service_role) can read or write; anon/authenticated cannot.
do $$
declare
    t text;
begin
    foreach t in array array['companies', 'integration_accounts', 'employees', 'tasks', 'calendar_events',
                             'integration_sync_logs', 'integration_events', 'schema_migrations'] loop
        execute format('alter table core.%I enable row level security', t);
    end loop;

    -- functions are executable by PUBLIC by default; only the owner and service_role may merge
    revoke execute on all functions in schema core from public;

    if exists (select 1 from pg_roles where rolname = 'service_role') then
        grant usage on schema core to service_role;
        grant all privileges on all tables in schema core to service_role;
        grant all privileges on all sequences in schema core to service_role;
        grant execute on all functions in schema core to service_role;
        grant usage on type core.employee_input, core.task_input, core.event_input to service_role;
        alter default privileges in schema core grant all on tables to service_role;
        alter default privileges in schema core grant execute on functions to service_role;
    end if;
end
$$;
