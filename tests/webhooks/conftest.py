"""Fixtures: accounts in a real (embedded Postgres) Core, the receiver, and the code location on a
real temp Dagster instance wired to that Core."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from bitrix24_assets.core import CoreStore
from bitrix24_assets.defs.assets import ALL_ASSETS
from bitrix24_assets.defs.inbox import bitrix24_events_inbox_sensor
from bitrix24_assets.defs.jobs import JOBS
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource, RawStoreResource
from bitrix24_assets.webhooks import ReceiverSettings, create_app

TOKEN_A = "tokA-jvh9y1ulvt2m6k5or90v9mg8nn32"
TOKEN_B = "tokB-8x0c1u2v3w4y5z6a7b8c9d0e1f2g"


@dataclass(frozen=True)
class Accounts:
    a: str
    b: str
    no_token: str
    pinned: str  # settings record domain + member_id


@pytest.fixture
def accounts(core_store: CoreStore) -> Accounts:
    company = core_store.create_company("Webhooks test company")
    a = core_store.add_account(
        company, "portal A", {"webhook_url": "http://127.0.0.1:1/rest/1/a/", "application_token": TOKEN_A}
    )
    b = core_store.add_account(
        company, "portal B", {"webhook_url": "http://127.0.0.1:1/rest/2/b/", "application_token": TOKEN_B}
    )
    bare = core_store.add_account(
        company, "portal without token", {"webhook_url": "http://127.0.0.1:1/rest/3/c/"}
    )
    pinned = core_store.add_account(
        company,
        "pinned portal",
        {"application_token": TOKEN_A},
        settings={"domain": "acme.bitrix24.ru", "member_id": "m-1"},
    )
    return Accounts(a.id, b.id, bare.id, pinned.id)


@pytest.fixture
def receiver_settings() -> ReceiverSettings:
    return ReceiverSettings(max_body_bytes=4096, token_cache_seconds=30.0, token_recheck_seconds=0.0)


@pytest.fixture
def client(core_store: CoreStore, receiver_settings: ReceiverSettings) -> Iterator[TestClient]:
    with TestClient(create_app(core_store, settings=receiver_settings)) as test_client:
        yield test_client


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A real in-memory instance: dynamic partitions, runs and run keys behave as in the daemon's."""
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def core(core_dsn: str) -> CoreResource:
    return CoreResource(database_url=core_dsn)


@pytest.fixture
def code_location(core: CoreResource, tmp_path: Path) -> dg.Definitions:
    """The real assets, jobs and inbox sensor with resources pointing at the test Core."""
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=JOBS,
        sensors=[bitrix24_events_inbox_sensor],
        resources={
            "core": core,
            "bitrix24": Bitrix24Resource(time_scale=0.001),
            "raw_store": RawStoreResource(base_dir=str(tmp_path / "storage")),
        },
        executor=dg.in_process_executor,
    )


def event_body(
    event: str = "ONTASKUPDATE",
    object_id: str = "123",
    *,
    token: str | None = TOKEN_A,
    ts: str = "1766047124",
    extra: dict[str, str] | None = None,
    domain: str = "acme.bitrix24.ru",
    member_id: str = "m-1",
) -> str:
    """A form body shaped like docs/bitrix24-rest-api.md §7.2 (outgoing-webhook auth block)."""
    if event.startswith("ONTASK"):
        data = {
            "data[FIELDS_BEFORE][ID]": object_id,
            "data[FIELDS_AFTER][ID]": object_id,
            "data[IS_ACCESSIBLE_BEFORE]": "undefined",
            "data[IS_ACCESSIBLE_AFTER]": "undefined",
        }
    elif event.startswith("ONCALENDAR"):
        data = {"data[id]": object_id}
    else:
        data = {"data[ID]": object_id, "data[ACTIVE]": "Y"}
    fields = {
        "event": event,
        "event_handler_id": "975",
        **data,
        "ts": ts,
        **(extra or {}),
        "auth[domain]": domain,
        "auth[client_endpoint]": f"https://{domain}/rest/",
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[member_id]": member_id,
    }
    if token is not None:
        fields["auth[application_token]"] = token
    return urlencode(fields)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}
