-- What Core looks like, read from the catalogue rather than kept in a second definition: the
-- Dagster assets describe each table's columns with core.table_columns, and `bitrix24-core status`
-- shows each entity's latest sync with core.latest_syncs. Both are RPC-callable on Supabase.

-- Columns of a table in schema core, in table order, with the type's catalogue name (timestamptz,
-- int4, jsonb, text[] for arrays). p_table is 'core.tasks' or 'tasks'.
create or replace function core.table_columns(p_table text)
returns table (column_name text, data_type text)
language plpgsql stable
set search_path = ''
as $$
declare
    v_table regclass := pg_catalog.to_regclass(
        case when pg_catalog.strpos(p_table, '.') > 0 then p_table else 'core.' || p_table end);
begin
    if v_table is null
       or (select c.relnamespace from pg_catalog.pg_class c where c.oid = v_table) <> 'core'::regnamespace then
        raise exception using errcode = '42P01', message = format('table %s does not exist in schema core', p_table);
    end if;
    return query
    select a.attname::text,
           case when t.typcategory = 'A' and e.oid is not null then e.typname || '[]' else t.typname end::text
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_type t on t.oid = a.atttypid
    left join pg_catalog.pg_type e on e.oid = t.typelem
    where a.attrelid = v_table and a.attnum > 0 and not a.attisdropped
    order by a.attnum;
end
$$;

-- The latest sync-log row of each entity of an account (running, failed or successful), by entity.
create or replace function core.latest_syncs(p_account uuid)
returns setof core.integration_sync_logs
language sql stable
set search_path = ''
as $$
    select distinct on (l.entity) l.*
    from core.integration_sync_logs l
    where l.integration_account_id = p_account
    order by l.entity, l.started_at desc, l.id desc;
$$;

-- Company names by id (all companies that have an integration account): run tags and metadata
-- name a portal's company, since partitions are bare account UUIDs.
create or replace function core.company_names()
returns table (id uuid, name text)
language sql stable
set search_path = ''
as $$
    select c.id, c.name from core.companies c
    where exists (select 1 from core.integration_accounts a where a.company_id = c.id);
$$;
