-- What a sync read but did not merge, by reason: records a mapper rejected (kept as they are in
-- Core, never removed for being malformed) and records the client dropped (repeated IDs). A sync
-- log row then says how many records were not taken and why, next to its counts.
alter table core.integration_sync_logs add column if not exists rejected jsonb;
