-- The outbox of commands from the platform to Bitrix24 (a task, a calendar event, a notification),
-- each carried out at most once. The platform inserts a row (core.enqueue_command); a sensor turns
-- pending rows into runs; the executor claims a row ('sending', committed BEFORE the HTTP call),
-- sends it once and writes back the Bitrix24 id ('sent'), one sentence ('failed'), or 'unknown' when
-- the connection dropped after the request may have run: an operator resolves those, nothing
-- repeats them. Access (row-level security, service_role grants) is applied by core.apply_access()
-- to these tables only, because this migration creates them.
create table if not exists core.integration_commands (
    id bigint generated always as identity primary key,
    account_id uuid not null references core.integration_accounts (id) on delete cascade,
    kind text not null check (kind in ('task', 'calendar_event', 'notification')),
    payload jsonb not null default '{}'::jsonb,
    idempotency_key text not null check (idempotency_key <> ''),
    status text not null default 'pending'
        check (status in ('pending', 'sending', 'sent', 'failed', 'unknown')),
    result text,
    error text,
    attempts integer not null default 0,
    run_id text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (account_id, idempotency_key)
);
create index if not exists integration_commands_pending
    on core.integration_commands (account_id, id) where status = 'pending';
create index if not exists integration_commands_sending
    on core.integration_commands (updated_at) where status = 'sending';

-- Confirmation codes sent to an employee (found by exact e-mail) through Bitrix24: only a salted
-- scrypt hash of the code is stored, with its expiry and a bounded number of attempts.
create table if not exists core.confirmation_codes (
    id uuid primary key default gen_random_uuid(),
    account_id uuid not null references core.integration_accounts (id) on delete cascade,
    email text not null,
    bitrix_user_id text,
    salt bytea not null,
    code_hash bytea not null,
    expires_at timestamptz not null,
    attempts integer not null default 0,
    max_attempts integer not null check (max_attempts > 0),
    verified_at timestamptz,
    created_at timestamptz not null default now()
);
create index if not exists confirmation_codes_expiry on core.confirmation_codes (expires_at);
