"""Company names for run tags and metadata (partitions are bare account UUIDs), on both backends:
the Supabase path goes over real HTTP to the PostgREST stand-in (tests/core/postgrest_standin.py)."""

from __future__ import annotations

from bitrix24_assets.core import PostgresStore
from bitrix24_assets.core.supabase import SupabaseStore

from .postgrest_standin import running_standin
from .test_accounts_supabase import KEY


def test_company_names_of_companies_with_accounts(core_store: PostgresStore, core_dsn: str) -> None:
    acme = core_store.create_company("Acme Ltd")
    core_store.create_company("No accounts Inc")  # a platform company without a portal: not listed
    globex = core_store.create_company("Глобекс")
    core_store.add_account(acme, "a", {"webhook_url": "https://a.bitrix24.ru/rest/1/x/"})
    core_store.add_account(globex, "g", {"webhook_url": "https://g.bitrix24.ru/rest/1/y/"})
    expected = {acme: "Acme Ltd", globex: "Глобекс"}
    assert core_store.company_names() == expected
    with running_standin(core_dsn, KEY) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        assert store.company_names() == expected
        store.close()
