-- Integration accounts: every operation the SDK needs, as functions, so the Postgres backend and
-- the Supabase backend (PostgREST RPC) run the same SQL.

-- The company an account belongs to. Merges take company_id from here, never from their input,
-- so one account's data cannot land under another company.
create or replace function core.account_company(p_account uuid)
returns uuid
language plpgsql stable
set search_path = ''
as $$
declare
    v_company uuid;
begin
    select a.company_id into v_company from core.integration_accounts a where a.id = p_account;
    if v_company is null then
        raise exception using errcode = 'P0002',
            message = format('integration account %s does not exist', p_account);
    end if;
    return v_company;
end
$$;

-- Ids of tasks and events are derived from (account, bitrix id): stable across re-syncs, and
-- cheaper than gen_random_uuid() on builds that read /dev/urandom per call. A canonical numeric
-- Bitrix id (what tasks and events have) gives md5(account)[first 8 bytes] || the id as 8 bytes:
-- an account's rows then sit together in the primary key in Bitrix id order, so a load in id
-- order appends to the btree instead of inserting at random pages (~15% of a first load's server
-- time, and less WAL). Any other id falls back to md5(account/bitrix id). Rows stored under the
-- older all-md5 ids keep them (ids are only made on insert). The SDK computes the same value
-- (postgres.row_id); tests/core/test_fingerprints.py checks that both agree.
create or replace function core.row_id(p_account uuid, p_bitrix_id text)
returns uuid
language sql immutable parallel safe  -- no SET clause: it must stay inlinable
as $$
    select case
        when p_bitrix_id ~ '^(0|[1-9][0-9]{0,17})$'
            then (pg_catalog.left(pg_catalog.md5(p_account::text), 16)
                  || pg_catalog.lpad(pg_catalog.to_hex(p_bitrix_id::bigint), 16, '0'))::uuid
        else pg_catalog.md5(p_account::text || '/' || p_bitrix_id)::uuid
    end;
$$;

create or replace function core.ensure_company(p_name text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
    v_id uuid;
begin
    select c.id into v_id from core.companies c where c.name = p_name order by c.id limit 1;
    if v_id is null then
        insert into core.companies (name) values (p_name) returning id into v_id;
    end if;
    return v_id;
end
$$;

create or replace function core.add_account(
    p_company uuid, p_name text, p_provider text, p_credentials jsonb, p_settings jsonb)
returns uuid
language sql
set search_path = ''
as $$
    insert into core.integration_accounts (company_id, name, provider, credentials, settings)
    values (p_company, p_name, p_provider, coalesce(p_credentials, '{}'::jsonb), coalesce(p_settings, '{}'::jsonb))
    returning id;
$$;

create or replace function core.list_accounts(p_provider text default null, p_active_only boolean default false)
returns setof core.integration_accounts
language sql stable
set search_path = ''
as $$
    select a.* from core.integration_accounts a
    where (p_provider is null or a.provider = p_provider)
      and (not p_active_only or a.status = 'active')
    order by a.created_at, a.id;
$$;

create or replace function core.get_account(p_account uuid)
returns setof core.integration_accounts
language sql stable
set search_path = ''
as $$
    select a.* from core.integration_accounts a where a.id = p_account;
$$;

create or replace function core.set_account_status(p_account uuid, p_status text, p_message text default null)
returns void
language plpgsql
set search_path = ''
as $$
begin
    update core.integration_accounts a
    set status = p_status, status_message = p_message, updated_at = now()
    where a.id = p_account
      and (a.status, a.status_message) is distinct from (p_status, p_message);
    if not found and not exists (select 1 from core.integration_accounts a where a.id = p_account) then
        raise exception using errcode = 'P0002',
            message = format('integration account %s does not exist', p_account);
    end if;
end
$$;

create or replace function core.set_account_credentials(p_account uuid, p_credentials jsonb)
returns void
language plpgsql
set search_path = ''
as $$
begin
    update core.integration_accounts a
    set credentials = a.credentials || coalesce(p_credentials, '{}'::jsonb), updated_at = now()
    where a.id = p_account;
    if not found then
        raise exception using errcode = 'P0002',
            message = format('integration account %s does not exist', p_account);
    end if;
end
$$;

-- Start a merge of one account's entity: serialise merges of that account+entity for the rest of
-- the transaction (so the merges' plain INSERTs need no ON CONFLICT) and tell the caller whether the
-- account has stored rows yet. An account with none can be loaded by a direct COPY into the table
-- (PostgresStore), unless row-level security applies to the caller (COPY FROM refuses that) or, for
-- employees, the company has unlinked employees with an e-mail that the merge might have to link.
create or replace function core.begin_merge(p_account uuid, p_entity text)
returns table (company_id uuid, has_rows boolean, direct_copy boolean)
language plpgsql
set search_path = ''
as $$
declare
    v_company uuid := core.account_company(p_account);
    v_rows boolean;
    v_direct boolean;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('core.' || p_entity),
                                             pg_catalog.hashtext(p_account::text));
    if p_entity = 'tasks' then
        v_rows := exists (select 1 from core.tasks t where t.integration_account_id = p_account);
    elsif p_entity = 'calendar_events' then
        v_rows := exists (select 1 from core.calendar_events t where t.integration_account_id = p_account);
    elsif p_entity = 'employees' then
        v_rows := exists (
            select 1 from core.employees e
            where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
               or e.company_id = v_company and not (e.metadata ? 'bitrix_id') and coalesce(e.email, '') <> '');
    else
        raise exception using errcode = '22023', message = format('unknown entity %s', p_entity);
    end if;
    v_direct := not v_rows and not pg_catalog.row_security_active(('core.' || p_entity)::regclass);
    return query select v_company, v_rows, v_direct;
end
$$;

-- Bitrix user id -> employee id of one account (what the merges resolve people with in SQL; the
-- direct first-load COPY resolves them in Python from this map).
create or replace function core.account_people(p_account uuid)
returns table (bitrix_id text, id uuid)
language plpgsql stable
set search_path = ''
as $$
declare
    v_company uuid := core.account_company(p_account);
begin
    return query
    select e.metadata ->> 'bitrix_id', e.id
    from core.employees e
    where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text
      and e.metadata ? 'bitrix_id';
end
$$;
