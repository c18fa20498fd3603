"""An account connected through an OAuth application instead of an inbound webhook.

Bitrix24 rotates the refresh token on every refresh, so a refreshed pair that is not written back
to ``core.integration_accounts`` would leave the next run with a dead refresh token: the account
would need the application re-installed. These tests run the real job against the sandbox's OAuth
mode (token endpoint on 127.0.0.1) and read the stored credentials back from Core.
"""

from __future__ import annotations

from typing import Any

from bitrix24_assets.core import CoreStore
from tests.defs.conftest import Runner, query

OAUTH_FIELDS = ("client_id", "client_secret", "access_token", "refresh_token", "token_url", "client_endpoint")


def _oauth_account(store: CoreStore, app: dict[str, Any]) -> str:
    company_id = store.create_company("OAuth Co")
    credentials = {k: app[k] for k in OAUTH_FIELDS}
    return store.add_account(company_id, "OAuth portal", credentials).id


def test_refreshed_tokens_are_persisted_and_the_next_run_uses_them(
    sandbox_factory: Any, core_store: CoreStore, core_dsn: str, runner: Runner
) -> None:
    portal = sandbox_factory()
    app = portal.admin.create_oauth_app()
    account_id = _oauth_account(core_store, app)
    portal.admin.expire_tokens()  # the first call answers expired_token: the client must refresh

    first = runner.run(account_id, "bitrix24_employees_job")
    assert first.success
    stored = core_store.get_account(account_id).oauth
    assert stored is not None
    assert stored["refresh_token"] != app["refresh_token"]
    assert stored["access_token"] != app["access_token"]

    portal.admin.expire_tokens()  # only the rotated refresh token stored in Core works now
    second = runner.run(account_id, "bitrix24_employees_job")
    assert second.success
    active = sum(1 for u in portal.state.users.rows.values() if u.active and u.user_type == "employee")
    (count,) = query(core_dsn, "select count(*) from core.employees where is_active")[0]
    assert count == active
