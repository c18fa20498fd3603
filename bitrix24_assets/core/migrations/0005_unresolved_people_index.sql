-- The owners_resolved check (core.unresolved_task_people) runs after every tasks merge, also when
-- nothing changed; counting by a scan of the account's tasks cost ~25 ms per 100k. This partial
-- index holds only the live tasks whose responsible person or creator is not resolved to an
-- employee (a few per cent), so the count reads a handful of entries and a first load pays for
-- entries of those rows only. Its predicate is the function's condition, word for word, which is
-- what lets the planner use it.
create index if not exists tasks_unresolved_people on core.tasks (integration_account_id)
    where not is_deleted
      and ((responsible_bitrix_id is not null and responsible_id is null)
        or (created_by_bitrix_id is not null and created_by_id is null));
