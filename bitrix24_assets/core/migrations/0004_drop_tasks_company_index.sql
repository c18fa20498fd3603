-- tasks(company_id) cost ~15% of a first load's server time (100k equal keys inserted into one
-- more btree, with WAL) and nothing in the integration reads tasks by company: merges and health
-- checks go by (integration_account_id, bitrix_id). A company's tasks are found through its
-- accounts: where integration_account_id in (select id from core.integration_accounts where
-- company_id = ...), which uses tasks_account_bitrix_key. A platform that needs the index can
-- recreate it; this migration runs once and will not drop it again.
drop index if exists core.tasks_company;
