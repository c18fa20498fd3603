-- The inbox of Bitrix24 outgoing events: the receiver puts, a sensor takes.

create or replace function core.put_event(p_account uuid, p_event text, p_payload jsonb, p_dedupe_key text)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
    perform core.account_company(p_account);
    insert into core.integration_events (integration_account_id, event, payload, dedupe_key)
    values (p_account, p_event, coalesce(p_payload, '{}'::jsonb), p_dedupe_key)
    on conflict (integration_account_id, dedupe_key) do nothing;
    return found;
end
$$;

create or replace function core.pending_events(p_limit integer default 100)
returns setof core.integration_events
language sql stable
set search_path = ''
as $$
    select e.* from core.integration_events e
    where e.processed_at is null
    order by e.received_at, e.id
    limit p_limit;
$$;

create or replace function core.mark_events_processed(p_ids uuid[])
returns integer
language sql
set search_path = ''
as $$
    with done as (
        update core.integration_events e set processed_at = now()
        where e.id = any (p_ids) and e.processed_at is null
        returning 1)
    select count(*)::integer from done;
$$;
