-- The post-merge check core_employees_no_duplicate_bitrix_ids looks for a Bitrix user linked twice
-- under one account in ANY company (a row planted or moved under another company), so it cannot use
-- the (company, account, bitrix id) key and scanned every company's people for each portal's sync:
-- with many small portals in one Core that made each sync's Core time grow with the number of
-- accounts. This index serves the account-only lookup. On a platform's own core.employees it is an
-- index the integration needs, like its unique key; access is left as it was.
create index if not exists employees_integration_account
    on core.employees ((metadata ->> 'integration_account_id'));
