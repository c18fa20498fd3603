-- Sync-log rows whose run stopped before the step could close them: the run worker was killed,
-- the run was canceled, or Core was unreachable when the step tried to record its failure. Such a
-- row would stay `running` forever; the Dagster layer (defs/run_health.py) closes it as
-- `abandoned` with one sentence once the run is over.

-- Only `running` rows are ever looked up here, and they are few (one per entity of each run in
-- progress) in a table that grows by every sync: a partial index keeps both functions below cheap.
-- (In this file rather than a numbered migration because it serves only these functions;
-- `if not exists` makes re-applying it a no-op.)
create index if not exists integration_sync_logs_running
    on core.integration_sync_logs (started_at) where status = 'running';

-- Close the run's rows that are still `running`; returns how many. Idempotent: a second call (or
-- a call for a run whose steps closed their rows) changes nothing.
create or replace function core.abandon_syncs(p_run_id text, p_message text)
returns integer
language plpgsql
set search_path = ''
as $$
declare
    v_count integer;
begin
    update core.integration_sync_logs l
    set status = 'abandoned', finished_at = now(), error = p_message
    where l.run_id = p_run_id and l.status = 'running';
    get diagnostics v_count = row_count;
    return v_count;
end
$$;

-- Rows still `running` that started more than p_older_than_seconds ago and name a run, oldest
-- first: the candidates a periodic sweep compares with the runs Dagster knows.
create or replace function core.stale_syncs(p_older_than_seconds integer, p_limit integer default 500)
returns setof core.integration_sync_logs
language sql stable
set search_path = ''
as $$
    select l.* from core.integration_sync_logs l
    where l.status = 'running' and l.run_id is not null
      and l.started_at < now() - make_interval(secs => p_older_than_seconds)
    order by l.started_at, l.id
    limit p_limit;
$$;
