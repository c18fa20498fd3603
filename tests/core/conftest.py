"""Helpers for Core tests: a company with one Bitrix24 account on a fresh database."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import pytest

from bitrix24_assets.core import IntegrationAccount, PostgresStore


@dataclass
class Portal:
    company_id: str
    account: IntegrationAccount

    @property
    def id(self) -> str:
        return self.account.id


def add_portal(store: PostgresStore, company: str = "Acme", name: str = "acme.bitrix24.ru") -> Portal:
    company_id = store.create_company(company)
    account = store.add_account(company_id, name, {"webhook_url": f"https://{name}/rest/1/s3cr3tt0ken/"})
    return Portal(company_id, account)


@pytest.fixture
def portal(core_store: PostgresStore) -> Portal:
    return add_portal(core_store)


@pytest.fixture
def db(core_dsn: str) -> psycopg.Connection:
    """A direct autocommit connection to the same database, for asserting on stored rows."""
    with psycopg.connect(core_dsn, autocommit=True) as conn:
        yield conn
