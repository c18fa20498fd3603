"""A Bitrix24 application installing and uninstalling itself, end to end over HTTP.

The sandbox portal (over HTTP on 127.0.0.1) installs an OAuth application and POSTs the install to
the receiver, which runs under a real uvicorn server on the embedded Postgres Core; the receiver
verifies the install at the sandbox's OAuth token endpoint and at its REST API, binds
``ONAPPUNINSTALL`` there, and the sandbox's uninstall comes back through that binding. Nothing is
mocked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr

from bitrix24_assets.bitrix24.events import EventName
from bitrix24_assets.core import CoreStore
from bitrix24_assets.sandbox import SandboxHandle
from bitrix24_assets.webhooks import create_app
from bitrix24_assets.webhooks.install import APP_EVENTS_PATH, INSTALL_PATH, AppSettings, find_portal_account
from tests.webhooks.conftest import FORM
from tests.webhooks.test_end_to_end import serving, wait_for_pending


def _admin(portal: SandboxHandle, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(f"{portal.base_url}/_sandbox{path}", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def install(portal: SandboxHandle, receiver: str, client_id: str, variant: str = "event") -> dict[str, Any]:
    """The sandbox's admin ``install_app``: the portal POSTs the install to the receiver."""
    return _admin(
        portal,
        "/oauth/install",
        {"handler_url": receiver + INSTALL_PATH, "client_id": client_id, "variant": variant},
    )


def uninstall(portal: SandboxHandle, client_id: str, clean: bool = False) -> dict[str, Any]:
    return _admin(portal, "/oauth/uninstall", {"client_id": client_id, "clean": clean})


@contextmanager
def receiver_for(store: CoreStore, settings: AppSettings) -> Iterator[str]:
    with serving(create_app(store, app_settings=settings)) as url:
        yield url


@pytest.fixture
def app_on(
    sandbox_factory: Callable[..., SandboxHandle],
) -> Callable[..., tuple[SandboxHandle, dict[str, Any]]]:
    """A sandbox portal and the application's registration on it (its client id and secret)."""

    def make(**config: Any) -> tuple[SandboxHandle, dict[str, Any]]:
        portal = sandbox_factory(users=6, tasks=6, events=0, **config)
        return portal, portal.admin.create_oauth_app(scopes=["user", "task", "calendar", "im"])

    return make


def settings_for(app: dict[str, Any], **overrides: Any) -> AppSettings:
    values: dict[str, Any] = {
        "client_id": app["client_id"],
        "client_secret": SecretStr(app["client_secret"]),
        "token_url": app["token_url"],
        **overrides,
    }
    return AppSettings(**values)


def portal_accounts(store: CoreStore, member_id: str) -> list[Any]:
    return [
        a for a in store.list_accounts() if a.credentials.get_secret_value().get("member_id") == member_id
    ]


def test_install_creates_the_account_and_a_reinstall_updates_it(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app)) as receiver:
        first = install(portal, receiver, app["client_id"])
        assert first["status"] == 200, first["answer"]
        account = find_portal_account(core_store, portal.portal.member_id)
        assert account is not None and account.status == "active"
        creds = account.credentials.get_secret_value()
        sent = dict(first["form"])
        # the stored pair is the one the OAuth server rotated to; the posted pair is spent
        assert creds["refresh_token"] != sent["auth[refresh_token]"]
        assert creds["access_token"] != sent["auth[access_token]"]
        assert creds["application_token"] == first["application_token"]
        assert creds["client_endpoint"] == f"{portal.base_url}/rest/"
        assert account.settings["member_id"] == portal.portal.member_id
        assert core_store.company_names()[account.company_id] == portal.portal.domain
        # the stored tokens work against the portal
        reply = httpx.post(portal.base_url + "/rest/profile", json={"auth": creds["access_token"]})
        assert reply.json()["result"]["ID"] == "1"
        # ONAPPUNINSTALL is bound to the receiver's application endpoint, the sync events to the account's
        app_state = portal.portal.oauth.apps[app["client_id"]]
        expected = {"ONAPPUNINSTALL": [receiver + APP_EVENTS_PATH]}
        expected |= {e.value: [f"{receiver}/bitrix24/events/{account.id}"] for e in EventName}
        assert app_state.bindings == expected
        assert first["answer"].count('"events_not_bound":[]') == 1
        # a change in the portal reaches the account's inbox through those bindings, authenticated
        # with the application token stored at install
        portal.admin.update_task(3, TITLE="Changed after the install")
        wait_for_pending(core_store, 1)
        (event,) = core_store.pending_events()
        assert (event.integration_account_id, event.event) == (account.id, "ONTASKUPDATE")

        second = install(portal, receiver, app["client_id"])
        assert second["status"] == 200 and '"created":false' in second["answer"].replace(" ", "")
        again = portal_accounts(core_store, portal.portal.member_id)
        assert [a.id for a in again] == [account.id]
        assert again[0].credentials.get_secret_value()["application_token"] == second["application_token"]
        assert second["application_token"] != first["application_token"]
        assert app_state.bindings == expected  # nothing bound twice


def test_the_installer_page_variant_answers_with_install_finish(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app, company="Platform customers")) as receiver:
        answer = install(portal, receiver, app["client_id"], variant="placement")
    assert answer["status"] == 200 and "BX24.installFinish()" in answer["answer"]
    account = find_portal_account(core_store, portal.portal.member_id)
    assert account is not None and account.status == "active"
    assert core_store.company_names()[account.company_id] == "Platform customers"
    assert account.application_token == answer["application_token"]


def test_an_installer_page_without_a_token_gets_it_from_the_bound_install_event(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app)) as receiver:
        answer = _admin(
            portal,
            "/oauth/install",
            {
                "handler_url": receiver + INSTALL_PATH,
                "client_id": app["client_id"],
                "variant": "placement",
                "page_token": False,
            },
        )
    assert answer["status"] == 200 and "APPLICATION_TOKEN" not in dict(answer["form"])
    # the receiver bound ONAPPINSTALL, which brought the token once the installer page finished
    assert [d["status"] for d in answer["install_event"]] == [200]
    account = find_portal_account(core_store, portal.portal.member_id)
    assert account is not None and account.application_token == answer["application_token"]
    assert len(portal_accounts(core_store, portal.portal.member_id)) == 1


def test_uninstall_disables_the_account_keeps_its_data_and_a_reinstall_resumes(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app)) as receiver:
        install(portal, receiver, app["client_id"])
        account = find_portal_account(core_store, portal.portal.member_id)
        assert account is not None
        gone = uninstall(portal, app["client_id"], clean=True)
        assert [d["status"] for d in gone["delivered"]] == [200]  # through the binding made at install
        after = core_store.get_account(account.id)
        assert after.status == "disabled"
        assert after.status_message is not None and "uninstalled" in after.status_message
        assert after.settings["app_uninstall_clean"] is True and after.settings["app_uninstalled_at"]
        # the same ONAPPUNINSTALL again changes nothing
        repeat = httpx.post(receiver + APP_EVENTS_PATH, content=encode(gone["form"]), headers=FORM)
        assert repeat.status_code == 200 and core_store.get_account(account.id).status == "disabled"

        back = install(portal, receiver, app["client_id"])
        assert back["status"] == 200, back["answer"]
        assert core_store.get_account(account.id).status == "active"
        assert core_store.get_account(account.id).settings["app_uninstalled_at"] is None


def test_an_account_an_operator_disabled_stays_disabled_on_install(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app)) as receiver:
        install(portal, receiver, app["client_id"])
        account = find_portal_account(core_store, portal.portal.member_id)
        assert account is not None
        core_store.disable_account(account.id, "Stopped by the operator.")
        answer = install(portal, receiver, app["client_id"])
    assert answer["status"] == 200 and "stays disabled" in answer["answer"]
    assert core_store.get_account(account.id).status == "disabled"


def encode(form: list[list[str]]) -> str:
    """A form the sandbox reported (JSON pairs) as the body it sent."""
    return urlencode([(k, v) for k, v in form])


def _forged(form: list[list[str]], **changes: str) -> str:
    fields = {k: v for k, v in form}
    fields.update(changes)
    return urlencode(fields)


def test_forged_installs_and_uninstalls_are_refused_and_store_nothing(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    member = portal.portal.member_id
    with receiver_for(core_store, settings_for(app)) as receiver:
        # tokens the OAuth server never issued
        made_up = _forged(
            install(portal, "http://127.0.0.1:9", app["client_id"])["form"],
            **{"auth[access_token]": "f" * 32, "auth[refresh_token]": "e" * 32},
        )
        refused = httpx.post(receiver + INSTALL_PATH, content=made_up, headers=FORM)
        assert refused.status_code == 401 and "did not accept" in refused.json()["error"]
        # real tokens of this app, but the request names another portal
        other = install(portal, "http://127.0.0.1:9", app["client_id"])
        wrong_member = _forged(other["form"], **{"auth[member_id]": "0" * 32})
        refused = httpx.post(receiver + INSTALL_PATH, content=wrong_member, headers=FORM)
        assert refused.status_code == 401 and "another portal" in refused.json()["error"]
        assert core_store.list_accounts() == []

        legit = install(portal, receiver, app["client_id"])
        assert legit["status"] == 200
        account = find_portal_account(core_store, member)
        assert account is not None
        before = account.credentials.get_secret_value()
        # a replay of a real install: its refresh token was spent by the first delivery
        replay = httpx.post(receiver + INSTALL_PATH, content=encode(legit["form"]), headers=FORM)
        assert replay.status_code == 401
        assert core_store.get_account(account.id).credentials.get_secret_value() == before

        uninstall_form = {
            "event": "ONAPPUNINSTALL",
            "data[CLEAN]": "0",
            "auth[domain]": portal.portal.domain,
            "auth[member_id]": member,
            "auth[application_token]": "not-the-token",
        }
        wrong = httpx.post(receiver + APP_EVENTS_PATH, content=urlencode(uninstall_form), headers=FORM)
        assert wrong.status_code == 401
        del uninstall_form["auth[application_token]"]
        missing = httpx.post(receiver + APP_EVENTS_PATH, content=urlencode(uninstall_form), headers=FORM)
        assert missing.status_code == 401
        unknown = {
            **uninstall_form,
            "auth[member_id]": "1" * 32,
            "auth[application_token]": legit["application_token"],
        }
        assert (
            httpx.post(receiver + APP_EVENTS_PATH, content=urlencode(unknown), headers=FORM).status_code
            == 404
        )
        assert core_store.get_account(account.id).status == "active"

        garbage = httpx.post(receiver + INSTALL_PATH, content="event=ONTASKADD", headers=FORM)
        assert garbage.status_code == 400
        not_form = httpx.post(receiver + INSTALL_PATH, json={"event": "ONAPPINSTALL"})
        assert not_form.status_code == 415
    assert [a.id for a in core_store.list_accounts()] == [account.id]


def test_a_receiver_with_the_wrong_client_secret_or_none_stores_nothing(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app, client_secret=SecretStr("wrong-secret"))) as receiver:
        answer = install(portal, receiver, app["client_id"])
    assert answer["status"] == 401 and "invalid_client" in answer["answer"]
    with receiver_for(core_store, AppSettings(client_id=None, client_secret=None)) as receiver:
        answer = install(portal, receiver, app["client_id"])
    assert answer["status"] == 503 and "BITRIX24_APP_CLIENT_SECRET" in answer["answer"]
    assert core_store.list_accounts() == []


def test_an_install_by_a_user_who_is_not_an_administrator_is_refused(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]], core_store: CoreStore
) -> None:
    portal, _ = app_on()
    app = _admin(portal, "/oauth/apps", {"user_id": 2})  # user 2 is not an administrator
    with receiver_for(core_store, settings_for(app)) as receiver:
        answer = install(portal, receiver, app["client_id"])
    assert answer["status"] == 403 and "not a Bitrix24 administrator" in answer["answer"]
    assert core_store.list_accounts() == []


def test_tokens_and_the_client_secret_never_reach_logs_answers_or_repr(
    app_on: Callable[..., tuple[SandboxHandle, dict[str, Any]]],
    core_store: CoreStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    portal, app = app_on()
    with receiver_for(core_store, settings_for(app)) as receiver:
        first = install(portal, receiver, app["client_id"])
        replay = httpx.post(receiver + INSTALL_PATH, content=encode(first["form"]), headers=FORM)
        gone = uninstall(portal, app["client_id"])
    account = find_portal_account(core_store, portal.portal.member_id)
    assert account is not None
    creds = account.credentials.get_secret_value()
    sent = dict(first["form"])
    secrets = {
        app["client_secret"],
        creds["access_token"],
        creds["refresh_token"],
        first["application_token"],
        sent["auth[access_token]"],
        sent["auth[refresh_token]"],
    }
    shown = "\n".join(
        [
            caplog.text,
            first["answer"],
            replay.text,
            *(d["answer"] for d in gone["delivered"]),
            repr(account),
            repr(settings_for(app)),
            str(account.model_dump(mode="json")),
            account.status_message or "",
        ]
    )
    assert "uninstalled" in shown and "installed on" in caplog.text  # the logs did say what happened
    leaked = [s for s in secrets if s in shown]
    assert leaked == []
