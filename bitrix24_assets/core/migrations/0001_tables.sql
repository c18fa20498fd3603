-- Core tables for the Bitrix24 integration.
-- Idempotent and safe on a Core that already has some of these tables (the platform owns
-- companies and employees): every table is CREATE ... IF NOT EXISTS and every column we rely on
-- is added with ADD COLUMN IF NOT EXISTS, so extra platform columns are left alone.

create schema if not exists core;

-- companies: created only if the platform has not created it.
create table if not exists core.companies (
    id uuid primary key default gen_random_uuid(),
    name text not null
);
alter table core.companies add column if not exists created_at timestamptz not null default now();

-- integration_accounts: one row per connected portal; credentials are secrets.
create table if not exists core.integration_accounts (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null references core.companies (id) on delete cascade
);
alter table core.integration_accounts
    add column if not exists provider text not null default 'bitrix24',
    add column if not exists name text not null default '',
    add column if not exists credentials jsonb not null default '{}'::jsonb,
    add column if not exists settings jsonb not null default '{}'::jsonb,
    add column if not exists status text not null default 'active',
    add column if not exists status_message text,
    add column if not exists created_at timestamptz not null default now(),
    add column if not exists updated_at timestamptz not null default now();
create index if not exists integration_accounts_provider on core.integration_accounts (provider);

-- employees: the platform's people; Bitrix24 users are linked through metadata.
create table if not exists core.employees (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null references core.companies (id) on delete cascade
);
alter table core.employees
    add column if not exists email text,
    add column if not exists full_name text,
    add column if not exists first_name text,
    add column if not exists last_name text,
    add column if not exists position text,
    add column if not exists phone text,
    add column if not exists is_active boolean not null default true,
    add column if not exists metadata jsonb not null default '{}'::jsonb,
    add column if not exists created_at timestamptz not null default now(),
    add column if not exists updated_at timestamptz not null default now();
-- Two portals of one company reuse Bitrix user ids, so the key includes the account.
-- Not partial: NULLs are distinct, so unlinked employees never collide, and lookups by
-- (company, account, bitrix id) can use the index without repeating a predicate.
create unique index if not exists employees_bitrix_key on core.employees
    (company_id, (metadata ->> 'integration_account_id'), (metadata ->> 'bitrix_id'));
create index if not exists employees_company_email on core.employees (company_id, lower(email));

-- tasks: one row per Bitrix24 task of one account.
-- No foreign keys on tasks/calendar_events: a per-row FK check costs more than the rest of a
-- 100k-row insert. The merges take company_id from the account row (core.account_company raises
-- for an unknown account), and deleting an account cascades through a trigger at the end of this file.
create table if not exists core.tasks (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null,
    integration_account_id uuid not null,
    bitrix_id text not null
);
alter table core.tasks
    add column if not exists title text,
    add column if not exists description text,
    add column if not exists status text,
    add column if not exists status_code integer,
    add column if not exists priority text,
    add column if not exists deadline timestamptz,
    add column if not exists start_date_plan timestamptz,
    add column if not exists end_date_plan timestamptz,
    add column if not exists closed_at timestamptz,
    add column if not exists created_at_source timestamptz,
    add column if not exists changed_at_source timestamptz,
    -- employee ids are resolved by the merge; the Bitrix ids are kept so a later employee
    -- sync can still resolve them (employees are never deleted, so no FK is needed).
    add column if not exists responsible_id uuid,
    add column if not exists created_by_id uuid,
    add column if not exists responsible_bitrix_id text,
    add column if not exists created_by_bitrix_id text,
    add column if not exists group_id text,
    add column if not exists is_deleted boolean not null default false,
    add column if not exists metadata jsonb not null default '{}'::jsonb,
    add column if not exists created_at timestamptz not null default now(),
    add column if not exists updated_at timestamptz not null default now();
create unique index if not exists tasks_account_bitrix_key on core.tasks (integration_account_id, bitrix_id);
create index if not exists tasks_company on core.tasks (company_id);

-- calendar_events: one row per Bitrix24 calendar event of one account.
create table if not exists core.calendar_events (
    id uuid primary key default gen_random_uuid(),
    company_id uuid not null,
    integration_account_id uuid not null,
    bitrix_id text not null
);
alter table core.calendar_events
    add column if not exists name text,
    add column if not exists description text,
    add column if not exists calendar_type text,
    add column if not exists owner_bitrix_id text,
    add column if not exists owner_id uuid,
    add column if not exists starts_at timestamptz,
    add column if not exists ends_at timestamptz,
    add column if not exists all_day boolean not null default false,
    add column if not exists location text,
    add column if not exists created_by_bitrix_id text,
    add column if not exists created_by_id uuid,
    add column if not exists is_deleted boolean not null default false,
    add column if not exists changed_at_source timestamptz,
    add column if not exists metadata jsonb not null default '{}'::jsonb,
    add column if not exists created_at timestamptz not null default now(),
    add column if not exists updated_at timestamptz not null default now();
create unique index if not exists calendar_events_account_bitrix_key
    on core.calendar_events (integration_account_id, bitrix_id);
create index if not exists calendar_events_account_starts on core.calendar_events (integration_account_id, starts_at);

-- integration_sync_logs: one row per sync of one entity of one account.
create table if not exists core.integration_sync_logs (
    id uuid primary key default gen_random_uuid(),
    integration_account_id uuid not null references core.integration_accounts (id) on delete cascade
);
alter table core.integration_sync_logs
    add column if not exists company_id uuid,
    add column if not exists provider text not null default 'bitrix24',
    add column if not exists entity text not null default '',
    add column if not exists status text not null default 'running',
    add column if not exists started_at timestamptz not null default now(),
    add column if not exists finished_at timestamptz,
    add column if not exists records_fetched integer,
    add column if not exists inserted integer,
    add column if not exists updated integer,
    add column if not exists unchanged integer,
    add column if not exists removed integer,
    add column if not exists cursor jsonb,
    add column if not exists error text,
    add column if not exists run_id text;
create index if not exists integration_sync_logs_cursor
    on core.integration_sync_logs (integration_account_id, entity, status, finished_at desc);

-- integration_events: the inbox of Bitrix24 outgoing events, deduplicated per account.
create table if not exists core.integration_events (
    id uuid primary key default gen_random_uuid(),
    integration_account_id uuid not null references core.integration_accounts (id) on delete cascade
);
alter table core.integration_events
    add column if not exists event text not null default '',
    add column if not exists payload jsonb not null default '{}'::jsonb,
    add column if not exists dedupe_key text not null default '',
    add column if not exists received_at timestamptz not null default now(),
    add column if not exists processed_at timestamptz;
create unique index if not exists integration_events_dedupe
    on core.integration_events (integration_account_id, dedupe_key);
create index if not exists integration_events_pending
    on core.integration_events (received_at) where processed_at is null;

-- Deleting an account removes its tasks and events (what ON DELETE CASCADE would do).
create or replace function core.delete_account_rows() returns trigger
language plpgsql set search_path = '' as $$
begin
    delete from core.tasks t where t.integration_account_id = old.id;
    delete from core.calendar_events e where e.integration_account_id = old.id;
    return old;
end
$$;
drop trigger if exists integration_accounts_delete_rows on core.integration_accounts;
create trigger integration_accounts_delete_rows after delete on core.integration_accounts
    for each row execute function core.delete_account_rows();
