-- Retention of personal data in Core. The inbox keeps each Bitrix24 outgoing event's payload (new
-- users' names and e-mails) and the sync logs keep error texts; both only grow. A schedule calls
-- core.purge_personal_data with the configured ages.
--
-- Deleted: inbox events that were processed and arrived more than p_events_days ago (pending ones
-- stay whatever their age: they are still to be synced), and finished sync-log rows older than
-- p_sync_logs_days, except each account+entity's latest successful row and its latest successful row
-- with a cursor (where the next incremental read starts: core.get_cursor). Running rows stay.
create or replace function core.purge_personal_data(p_events_days integer, p_sync_logs_days integer)
returns table (integration_events integer, integration_sync_logs integer)
language plpgsql
set search_path = ''
as $$
declare
    v_events integer;
    v_logs integer;
begin
    if p_events_days is null or p_sync_logs_days is null or p_events_days < 0 or p_sync_logs_days < 0 then
        raise exception using errcode = '22023',
            message = format('retention ages must be 0 days or more (events %s, sync logs %s)',
                             p_events_days, p_sync_logs_days);
    end if;
    delete from core.integration_events e
    where e.processed_at is not null
      and e.received_at < now() - pg_catalog.make_interval(days => p_events_days);
    get diagnostics v_events = row_count;

    delete from core.integration_sync_logs l
    where l.status <> 'running'
      and coalesce(l.finished_at, l.started_at) < now() - pg_catalog.make_interval(days => p_sync_logs_days)
      and not (l.status = 'success' and not exists (
          select 1 from core.integration_sync_logs n
          where n.integration_account_id = l.integration_account_id and n.entity = l.entity
            and n.status = 'success' and n.finished_at > l.finished_at))
      and not (l.status = 'success' and l.cursor is not null and not exists (
          select 1 from core.integration_sync_logs n
          where n.integration_account_id = l.integration_account_id and n.entity = l.entity
            and n.status = 'success' and n.cursor is not null and n.finished_at > l.finished_at));
    get diagnostics v_logs = row_count;
    return query select v_events, v_logs;
end
$$;
