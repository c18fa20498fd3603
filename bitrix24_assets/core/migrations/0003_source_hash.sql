-- Per-row fingerprints: source_hash is a 128-bit hash (as uuid) of the merged input fields, computed by
-- the SDK (bitrix24_assets/core/staging.py) and sent with every row by both backends. A merge
-- compares (bitrix_id, source_hash) only, so an unchanged rerun never reads or ships full rows.
-- Existing rows get NULL: the first merge after this migration compares them in full once.
alter table core.employees add column if not exists source_hash uuid;
alter table core.tasks add column if not exists source_hash uuid;
alter table core.calendar_events add column if not exists source_hash uuid;

-- The input types carry the hash too (appended, so older column orders stay valid).
do $$
declare
    t text;
begin
    foreach t in array array['employee_input', 'task_input', 'event_input'] loop
        if not exists (
            select 1 from pg_attribute
            where attrelid = (select typrelid from pg_type where oid = to_regtype('core.' || t))
              and attname = 'source_hash' and not attisdropped
        ) then
            execute format('alter type core.%I add attribute source_hash uuid', t);
        end if;
    end loop;
end
$$;

-- A row changed by anything but a merge (a platform edit, mark_deleted, remove_missing) loses its
-- fingerprint, so the next merge compares it in full and restores Bitrix24's data. Merge functions
-- run with `core.merging = 'on'` (a function-level SET, so it ends with the function) and skip this.
create or replace function core.clear_source_hash() returns trigger
language plpgsql set search_path = '' as $$
begin
    new.source_hash := null;
    return new;
end
$$;

drop trigger if exists tasks_clear_source_hash on core.tasks;
create trigger tasks_clear_source_hash before update on core.tasks
    for each row when (current_setting('core.merging', true) is distinct from 'on' and old.source_hash is not null)
    execute function core.clear_source_hash();

drop trigger if exists calendar_events_clear_source_hash on core.calendar_events;
create trigger calendar_events_clear_source_hash before update on core.calendar_events
    for each row when (current_setting('core.merging', true) is distinct from 'on' and old.source_hash is not null)
    execute function core.clear_source_hash();

-- employees belong to the platform, which updates its own columns too: only a change of a column
-- the merge writes drops the fingerprint.
drop trigger if exists employees_clear_source_hash on core.employees;
create trigger employees_clear_source_hash before update on core.employees
    for each row when (
        current_setting('core.merging', true) is distinct from 'on' and old.source_hash is not null
        and (old.email, old.full_name, old.first_name, old.last_name, old.position, old.phone, old.is_active,
             old.metadata)
            is distinct from
            (new.email, new.full_name, new.first_name, new.last_name, new.position, new.phone, new.is_active,
             new.metadata))
    execute function core.clear_source_hash();
