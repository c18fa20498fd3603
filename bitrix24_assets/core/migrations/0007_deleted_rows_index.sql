-- Every merge reports the account's rows after it (MergeCounts.rows_in_table, live_rows, shown as
-- dagster/row_count). A full merge counts them in the pass it makes over the account's rows anyway;
-- an incremental one (an hourly or webhook merge of a few rows) counts them apart
-- (core.account_counts): all rows through the (integration_account_id, bitrix_id) key, the deleted
-- ones through these partial indexes, so the live figure is an index scan rather than a heap scan
-- of the account. They hold only removed rows (a few per cent), so a first load, which inserts
-- live rows only, adds no entries to them.
create index if not exists tasks_deleted on core.tasks (integration_account_id) where is_deleted;
create index if not exists calendar_events_deleted on core.calendar_events (integration_account_id) where is_deleted;
