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

-- Serialise changes of one portal's account in one company (upsert, update): two `accounts add` at
-- once must not both insert, also while the unique key is left out (see migration 0006).
create or replace function core.lock_portal(p_company uuid, p_provider text, p_key text)
returns void
language sql
set search_path = ''
as $$
    select pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtext('core.integration_accounts'),
        pg_catalog.hashtext(pg_catalog.concat_ws('/', p_company, p_provider, p_key)));
$$;

-- The account of this portal in this company (the oldest, should a Core hold duplicates), if any.
create or replace function core.find_account(p_company uuid, p_provider text, p_credentials jsonb)
returns setof core.integration_accounts
language sql stable
set search_path = ''
as $$
    select a.* from core.integration_accounts a
    where a.company_id = p_company and a.provider = p_provider
      and a.portal_key = core.account_portal_key(p_provider, p_credentials)
    order by a.created_at, a.id
    limit 1;
$$;

-- Add a portal to a company, or update the company's account of that portal: the name is replaced
-- (unless empty), credentials and settings are merged into what is stored. Status is left alone
-- (`enable`/`disable` change it). Returns the account and whether it was created.
create or replace function core.upsert_account(
    p_company uuid, p_name text, p_provider text, p_credentials jsonb, p_settings jsonb)
returns table (account_id uuid, created boolean)
language plpgsql
set search_path = ''
as $$
declare
    v_credentials jsonb := coalesce(p_credentials, '{}'::jsonb);
    v_key text := core.account_portal_key(p_provider, v_credentials);
    v_id uuid;
begin
    if v_key is not null then
        perform core.lock_portal(p_company, p_provider, v_key);
        select a.id into v_id from core.find_account(p_company, p_provider, v_credentials) a;
        if v_id is not null then
            update core.integration_accounts a
            set name = coalesce(nullif(p_name, ''), a.name),
                credentials = a.credentials || v_credentials,
                settings = a.settings || coalesce(p_settings, '{}'::jsonb),
                updated_at = now()
            where a.id = v_id;
            return query select v_id, false;
            return;
        end if;
    end if;
    insert into core.integration_accounts (company_id, name, provider, credentials, settings)
    values (p_company, coalesce(p_name, ''), p_provider, v_credentials, coalesce(p_settings, '{}'::jsonb))
    returning id into v_id;
    return query select v_id, true;
end
$$;

-- Kept for SQL callers of earlier versions: an upsert that returns the account id.
create or replace function core.add_account(
    p_company uuid, p_name text, p_provider text, p_credentials jsonb, p_settings jsonb)
returns uuid
language sql
set search_path = ''
as $$
    select u.account_id from core.upsert_account(p_company, p_name, p_provider, p_credentials, p_settings) u;
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

-- Change an account: a non-empty name replaces the old one, credentials and settings are merged
-- into what is stored (a re-created webhook's URL replaces the old URL). Refused when the new
-- credentials name a portal another account of the same company already has.
create or replace function core.update_account(
    p_account uuid, p_name text default null, p_credentials jsonb default null, p_settings jsonb default null)
returns void
language plpgsql
set search_path = ''
as $$
declare
    v_account core.integration_accounts;
    v_key text;
    v_other uuid;
begin
    select a.* into v_account from core.integration_accounts a where a.id = p_account for update;
    if not found then
        raise exception using errcode = 'P0002',
            message = format('integration account %s does not exist', p_account);
    end if;
    v_key := core.account_portal_key(v_account.provider, v_account.credentials || coalesce(p_credentials, '{}'::jsonb));
    if v_key is not null and v_key is distinct from v_account.portal_key then
        perform core.lock_portal(v_account.company_id, v_account.provider, v_key);
        select a.id into v_other from core.integration_accounts a
        where a.company_id = v_account.company_id and a.provider = v_account.provider
          and a.portal_key = v_key and a.id <> p_account
        limit 1;
        if v_other is not null then
            raise exception using errcode = '23505',
                message = format('account %s of the same company already has portal %s', v_other, v_key);
        end if;
    end if;
    update core.integration_accounts a
    set name = coalesce(nullif(p_name, ''), a.name),
        credentials = a.credentials || coalesce(p_credentials, '{}'::jsonb),
        settings = a.settings || coalesce(p_settings, '{}'::jsonb),
        updated_at = now()
    where a.id = p_account;
end
$$;

-- What an account has in Core: the rows that removing it deletes (tasks and calendar events through
-- the trigger integration_accounts_delete_rows, sync logs and inbox events through their foreign
-- keys) and the employees linked to it, which removing it keeps (they are the platform's people).
create or replace function core.account_rows(p_account uuid)
returns table (tasks integer, calendar_events integer, integration_sync_logs integer,
               integration_events integer, employees integer)
language plpgsql stable
set search_path = ''
as $$
declare
    v_company uuid := core.account_company(p_account);
begin
    return query select
        (select count(*)::integer from core.tasks t where t.integration_account_id = p_account),
        (select count(*)::integer from core.calendar_events e where e.integration_account_id = p_account),
        (select count(*)::integer from core.integration_sync_logs l where l.integration_account_id = p_account),
        (select count(*)::integer from core.integration_events i where i.integration_account_id = p_account),
        (select count(*)::integer from core.employees e
         where e.company_id = v_company and e.metadata ->> 'integration_account_id' = p_account::text);
end
$$;

-- Delete an account; returns what it had (core.account_rows), counted under the same lock. Only the
-- account row is deleted here: its tasks, events, sync logs and inbox events follow it (trigger and
-- foreign keys), its employees stay with the account's id and Bitrix id still in their metadata.
create or replace function core.remove_account(p_account uuid)
returns table (tasks integer, calendar_events integer, integration_sync_logs integer,
               integration_events integer, employees integer)
language plpgsql
set search_path = ''
as $$
begin
    perform 1 from core.integration_accounts a where a.id = p_account for update;
    return query select * from core.account_rows(p_account);
    delete from core.integration_accounts a where a.id = p_account;
end
$$;

-- Accounts that share a portal within a company (what the unique key forbids; a Core can hold such
-- duplicates from before it). Ordered by company, portal, age: the caller groups consecutive rows.
create or replace function core.duplicate_accounts(p_company uuid default null)
returns setof core.integration_accounts
language sql stable
set search_path = ''
as $$
    select a.* from core.integration_accounts a
    where (p_company is null or a.company_id = p_company)
      and a.portal_key is not null
      and exists (
          select 1 from core.integration_accounts o
          where o.company_id = a.company_id and o.provider = a.provider and o.portal_key = a.portal_key
            and o.id <> a.id)
    order by a.company_id, a.provider, a.portal_key, a.created_at, a.id;
$$;

-- Run by every migrate: create the unique key on (company, provider, portal) unless duplicates are
-- there; then say which accounts share a portal (and the index stays out until they are removed).
create or replace function core.ensure_account_identity()
returns setof text
language plpgsql
set search_path = ''
as $$
declare
    v_duplicates text;
begin
    if pg_catalog.to_regclass('core.integration_accounts_portal') is not null then
        return;
    end if;
    select string_agg(format('company %s has %s accounts for portal %s (%s)', d.company_id, d.n, d.portal_key, d.ids),
                      '; ' order by d.company_id, d.portal_key)
    into v_duplicates
    from (select a.company_id, a.portal_key, count(*) as n,
                 string_agg(a.id::text, ', ' order by a.created_at, a.id) as ids
          from core.integration_accounts a
          where a.portal_key is not null
          group by a.company_id, a.provider, a.portal_key
          having count(*) > 1) d;
    if v_duplicates is not null then
        return next format('left out the unique key integration_accounts_portal: %s; keep one account per portal'
                           ' (bitrix24-core accounts remove <id>) and migrate again', v_duplicates);
        return;
    end if;
    create unique index integration_accounts_portal
        on core.integration_accounts (company_id, provider, portal_key);
    return next 'created the unique key integration_accounts_portal (one account per portal and company)';
end
$$;
