-- The commands outbox (migration 0010): every function returns jsonb so both backends (psycopg and
-- PostgREST RPC) read the same values.

-- Insert a command, or return the one this account already has under the idempotency key.
create or replace function core.enqueue_command(
    p_account uuid, p_kind text, p_payload jsonb, p_idempotency_key text)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row core.integration_commands;
    v_created boolean := false;
begin
    perform core.account_company(p_account);
    insert into core.integration_commands (account_id, kind, payload, idempotency_key)
    values (p_account, p_kind, coalesce(p_payload, '{}'::jsonb), p_idempotency_key)
    on conflict (account_id, idempotency_key) do nothing
    returning * into v_row;
    v_created := v_row.id is not null;
    if not v_created then
        select c.* into v_row from core.integration_commands c
        where c.account_id = p_account and c.idempotency_key = p_idempotency_key;
    end if;
    return jsonb_build_object('command', to_jsonb(v_row), 'created', v_created);
end
$$;

-- Claim up to p_limit pending commands of an account: they become 'sending' (attempts + 1) and are
-- committed so BEFORE any HTTP call. SKIP LOCKED: two executors never claim the same row. Rows left
-- 'sending' longer than p_stale_seconds (their run died between claim and outcome) become 'unknown':
-- they may have been sent, so they are never claimed again.
create or replace function core.claim_commands(
    p_account uuid, p_limit integer, p_run_id text default null, p_stale_seconds integer default 900)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_claimed jsonb;
begin
    update core.integration_commands c
    set status = 'unknown', updated_at = now(),
        error = 'The run sending it stopped before its outcome was recorded; check Bitrix24 and resolve it.'
    where c.account_id = p_account and c.status = 'sending'
      and c.updated_at < now() - make_interval(secs => p_stale_seconds);
    with picked as (
        select c.id from core.integration_commands c
        where c.account_id = p_account and c.status = 'pending'
        order by c.id
        limit p_limit
        for update skip locked),
    claimed as (
        update core.integration_commands c
        set status = 'sending', attempts = c.attempts + 1, run_id = p_run_id, updated_at = now()
        from picked where c.id = picked.id
        returning c.*)
    select coalesce(jsonb_agg(to_jsonb(claimed) order by claimed.id), '[]'::jsonb) into v_claimed from claimed;
    return v_claimed;
end
$$;

-- Record the outcome of a claimed command: 'sent' (with the Bitrix24 id), 'failed' or 'unknown' (with
-- one sentence), or 'pending' again when nothing was sent (rate limited before the portal ran it).
-- Only a row still 'sending' changes; returns the row, or null when it was not 'sending'.
create or replace function core.finish_command(
    p_id bigint, p_status text, p_result text default null, p_error text default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row core.integration_commands;
begin
    if p_status not in ('sent', 'failed', 'unknown', 'pending') then
        raise exception using errcode = '22023', message = format('%s is not an outcome of a command', p_status);
    end if;
    update core.integration_commands c
    set status = p_status, result = p_result, error = p_error, updated_at = now()
    where c.id = p_id and c.status = 'sending'
    returning * into v_row;
    return case when v_row.id is null then null else to_jsonb(v_row) end;
end
$$;

-- An operator's decision on an 'unknown' command after checking Bitrix24: 'sent' (optionally with
-- the id found there) or 'failed'. Returns {found, resolved, command}.
create or replace function core.resolve_command(
    p_id bigint, p_status text, p_result text default null, p_note text default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row core.integration_commands;
begin
    if p_status not in ('sent', 'failed') then
        raise exception using errcode = '22023', message = format('an unknown command resolves as sent or failed, not %s', p_status);
    end if;
    update core.integration_commands c
    set status = p_status,
        result = coalesce(p_result, c.result),
        error = case when p_status = 'failed' then coalesce(p_note, c.error) else p_note end,
        updated_at = now()
    where c.id = p_id and c.status = 'unknown'
    returning * into v_row;
    if v_row.id is not null then
        return jsonb_build_object('found', true, 'resolved', true, 'command', to_jsonb(v_row));
    end if;
    select c.* into v_row from core.integration_commands c where c.id = p_id;
    return jsonb_build_object('found', v_row.id is not null, 'resolved', false,
                              'command', case when v_row.id is null then null else to_jsonb(v_row) end);
end
$$;

-- Commands, newest first, optionally of one account and/or status (and/or by id).
create or replace function core.list_commands(
    p_account uuid default null, p_status text default null, p_limit integer default 100,
    p_ids bigint[] default null)
returns jsonb
language sql stable
set search_path = ''
as $$
    select coalesce(jsonb_agg(to_jsonb(r) order by r.id desc), '[]'::jsonb)
    from (select c.* from core.integration_commands c
          where (p_account is null or c.account_id = p_account)
            and (p_status is null or c.status = p_status)
            and (p_ids is null or c.id = any (p_ids))
          order by c.id desc
          limit p_limit) r;
$$;

-- Accounts with pending commands, for the sensor: the highest pending id (the run key), the most
-- attempts among them (changes when commands go back to pending, so a new run is requested) and
-- how long the oldest has waited (a queue whose run failed before claiming is tried again).
create or replace function core.pending_command_accounts()
returns jsonb
language sql stable
set search_path = ''
as $$
    select coalesce(jsonb_agg(jsonb_build_object(
               'account_id', p.account_id, 'max_id', p.max_id, 'pending', p.pending,
               'max_attempts', p.max_attempts,
               'waiting_seconds', extract(epoch from now() - p.oldest)::bigint) order by p.account_id),
               '[]'::jsonb)
    from (select c.account_id, max(c.id) as max_id, count(*) as pending, max(c.attempts) as max_attempts,
                 min(c.updated_at) as oldest
          from core.integration_commands c where c.status = 'pending'
          group by c.account_id) p;
$$;

-- Confirmation codes: only the salted hash is stored (hex over the API: JSON has no bytes).
create or replace function core.create_confirmation(
    p_account uuid, p_email text, p_bitrix_user_id text, p_salt text, p_hash text,
    p_ttl_seconds integer, p_max_attempts integer)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_id uuid;
    v_expires timestamptz;
begin
    perform core.account_company(p_account);
    insert into core.confirmation_codes
        (account_id, email, bitrix_user_id, salt, code_hash, expires_at, max_attempts)
    values (p_account, p_email, p_bitrix_user_id, decode(p_salt, 'hex'), decode(p_hash, 'hex'),
            now() + make_interval(secs => p_ttl_seconds), p_max_attempts)
    returning id, expires_at into v_id, v_expires;
    return jsonb_build_object('id', v_id, 'expires_at', v_expires);
end
$$;

-- One verification attempt: counted first (atomically, so parallel guesses cannot exceed the limit),
-- then the caller compares. state: check | expired | exhausted | verified | missing.
create or replace function core.confirmation_attempt(p_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_row core.confirmation_codes;
begin
    select * into v_row from core.confirmation_codes c where c.id = p_id for update;
    if v_row.id is null then
        return jsonb_build_object('state', 'missing');
    elsif v_row.verified_at is not null then
        return jsonb_build_object('state', 'verified');
    elsif v_row.expires_at <= now() then
        return jsonb_build_object('state', 'expired');
    elsif v_row.attempts >= v_row.max_attempts then
        return jsonb_build_object('state', 'exhausted');
    end if;
    update core.confirmation_codes c set attempts = c.attempts + 1 where c.id = p_id;
    return jsonb_build_object('state', 'check', 'salt', encode(v_row.salt, 'hex'),
                              'hash', encode(v_row.code_hash, 'hex'),
                              'attempts_left', v_row.max_attempts - v_row.attempts - 1);
end
$$;

-- Mark a code used (once): a verified code cannot be verified again.
create or replace function core.confirmation_verified(p_id uuid)
returns jsonb
language sql
set search_path = ''
as $$
    with done as (
        update core.confirmation_codes c set verified_at = now()
        where c.id = p_id and c.verified_at is null and c.expires_at > now()
        returning 1)
    select to_jsonb(exists (select 1 from done));
$$;
