"""Run tags that say which portal a run is about: partitions are bare UUIDs.

``bitrix24/account`` (the account's name) and ``bitrix24/company`` are put on every run the
sensors and schedules request, so the Runs page can be filtered by a portal's name
(``tag:bitrix24/account=acme.bitrix24.ru``). Names are read from Core once per tick; when Core
cannot be read the runs are still requested, only without the names.
"""

from __future__ import annotations

import logging

from bitrix24_assets.core import CoreStore, IntegrationAccount

__all__ = ["ACCOUNT_TAG", "COMPANY_TAG", "account_tags", "tags_by_account"]

log = logging.getLogger(__name__)

ACCOUNT_TAG = "bitrix24/account"
COMPANY_TAG = "bitrix24/company"
TRIGGER_TAG = "bitrix24/trigger"
_MAX_TAG = 200  # tag values are shown in lists and filters; names longer than this are cut


def account_tags(account: IntegrationAccount, company: str | None = None) -> dict[str, str]:
    tags = {ACCOUNT_TAG: account.name[:_MAX_TAG] or account.id}
    if company:
        tags[COMPANY_TAG] = company[:_MAX_TAG]
    return tags


def tags_by_account(store: CoreStore) -> dict[str, dict[str, str]]:
    """Tags of every Bitrix24 account by id; empty when Core cannot be read."""
    try:
        accounts = store.list_accounts(provider="bitrix24")
        companies = store.company_names()
    except Exception as exc:
        log.warning("Run tags without account names: Core could not be read (%s).", type(exc).__name__)
        return {}
    return {a.id: account_tags(a, companies.get(a.company_id)) for a in accounts}
