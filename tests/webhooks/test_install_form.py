"""The install/uninstall request parser: every documented shape, and property tests over arbitrary forms.

Forms are built the way Bitrix24 sends them (PHP bracket keys) and read back through the same
``parse_form`` the receiver uses. The parser must either return a request whose fields are exactly
what was sent or refuse with its own one-sentence error, for any body at all.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bitrix24_assets.bitrix24.events import EventPayloadError, parse_form
from bitrix24_assets.core import CoreStore
from bitrix24_assets.webhooks import create_app
from bitrix24_assets.webhooks.install import APP_EVENTS_PATH, INSTALL_PATH, AppSettings
from bitrix24_assets.webhooks.install_form import (
    AppInstall,
    AppUninstall,
    InstallPayloadError,
    parse_app_request,
)
from tests.webhooks.conftest import FORM

MEMBER = "d897063e1ce7c5eb9f04b9751eef5915"
ACCESS = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
REFRESH = "90f8e7d6c5b4a3928170f6e5d4c3b2a1"
APP_TOKEN = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas"


def install_event(**auth: str) -> dict[str, str]:
    """The installation callback / ONAPPINSTALL as Bitrix24 documents it."""
    fields = {
        "event": "ONAPPINSTALL",
        "data[VERSION]": "1",
        "data[ACTIVE]": "Y",
        "data[INSTALLED]": "Y",
        "data[LANGUAGE_ID]": "en",
        "ts": "1766047124",
        "auth[access_token]": ACCESS,
        "auth[expires]": "1766050724",
        "auth[expires_in]": "3600",
        "auth[scope]": "user,task,calendar",
        "auth[domain]": "acme.bitrix24.com",
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[status]": "L",
        "auth[client_endpoint]": "https://acme.bitrix24.com/rest/",
        "auth[member_id]": MEMBER,
        "auth[user_id]": "1",
        "auth[refresh_token]": REFRESH,
        "auth[application_token]": APP_TOKEN,
    }
    fields.update({f"auth[{k}]": v for k, v in auth.items()})
    return fields


def read(fields: dict[str, str], query: dict[str, str] | None = None) -> AppInstall | AppUninstall:
    return parse_app_request(parse_form(urlencode(fields)), query)


def test_the_install_event_is_read_with_every_documented_field() -> None:
    request = read(install_event())
    assert isinstance(request, AppInstall) and request.variant == "event"
    assert request.member_id == MEMBER and request.domain == "acme.bitrix24.com"
    assert request.client_endpoint == "https://acme.bitrix24.com/rest/"
    assert request.access_token.get_secret_value() == ACCESS
    assert request.refresh_token.get_secret_value() == REFRESH
    assert request.application_token is not None and request.application_token.get_secret_value() == APP_TOKEN
    assert request.expires_in == 3600 and request.scope == ("user", "task", "calendar")
    assert ACCESS not in repr(request) and REFRESH not in repr(request) and APP_TOKEN not in repr(request)


def test_the_installer_page_is_read_from_body_and_query() -> None:
    body = {
        "AUTH_ID": ACCESS,
        "AUTH_EXPIRES": "3600",
        "REFRESH_ID": REFRESH,
        "SERVER_ENDPOINT": "https://oauth.bitrix.info/rest/",
        "APPLICATION_TOKEN": APP_TOKEN,
        "APPLICATION_SCOPE": "user",
        "member_id": MEMBER,
        "status": "L",
        "PLACEMENT": "DEFAULT",
        "PLACEMENT_OPTIONS": "{}",
    }
    query = {"DOMAIN": "acme.bitrix24.com", "PROTOCOL": "1", "LANG": "en", "APP_SID": "0f5a2e9b"}
    request = read(body, query)
    assert isinstance(request, AppInstall) and request.variant == "placement"
    assert request.client_endpoint == "https://acme.bitrix24.com/rest/" and request.member_id == MEMBER
    assert request.application_token is not None and request.scope == ("user",)
    older = read({k: v for k, v in body.items() if k != "APPLICATION_TOKEN"}, {**query, "PROTOCOL": "0"})
    assert isinstance(older, AppInstall) and older.application_token is None  # older portals omit it
    assert older.client_endpoint == "http://acme.bitrix24.com/rest/"


def test_the_uninstall_event_carries_only_the_application_token() -> None:
    fields = {
        "event": "ONAPPUNINSTALL",
        "data[LANGUAGE_ID]": "en",
        "data[CLEAN]": "1",
        "ts": "1766047124",
        "auth[domain]": "acme.bitrix24.com",
        "auth[client_endpoint]": "https://acme.bitrix24.com/rest/",
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[member_id]": MEMBER,
        "auth[application_token]": APP_TOKEN,
    }
    request = read(fields)
    assert isinstance(request, AppUninstall) and request.clean and request.member_id == MEMBER
    assert isinstance(read({**fields, "data[CLEAN]": "0"}), AppUninstall)
    assert not read({**fields, "data[CLEAN]": "0"}).clean  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event": "ONTASKADD"}, "Only ONAPPINSTALL and ONAPPUNINSTALL"),
        ({"x": "1"}, "neither a Bitrix24 install"),
        ({"event": "ONAPPINSTALL"}, r"no auth\[\.\.\.\]"),
        (install_event(member_id=""), r"no auth\[member_id\]"),
        (install_event(refresh_token=""), r"no auth\[refresh_token\]"),
        (install_event(access_token="has space"), r"auth\[access_token\] is malformed"),
        (install_event(expires_in="²"), r"auth\[expires_in\] is malformed"),
        (install_event(expires_in="9" * 40), r"auth\[expires_in\] is malformed"),
        (install_event(domain="evil.com/x"), r"auth\[domain\] is malformed"),
        (install_event(client_endpoint="javascript:alert(1)"), r"auth\[client_endpoint\] is malformed"),
        ({**install_event(), "auth[member_id][0]": "x"}, r"auth\[member_id\] is not a single value"),
    ],
)
def test_malformed_requests_are_refused_with_one_sentence(fields: dict[str, str], message: str) -> None:
    if "auth[member_id][0]" in fields:
        del fields["auth[member_id]"]
    with pytest.raises(InstallPayloadError, match=message) as info:
        read(fields)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
    assert ACCESS not in str(info.value) and REFRESH not in str(info.value)


_KEYS = [
    "event",
    "AUTH_ID",
    "REFRESH_ID",
    "member_id",
    "DOMAIN",
    "PROTOCOL",
    "APPLICATION_TOKEN",
    "AUTH_EXPIRES",
    "data[CLEAN]",
    *(f"auth[{k}]" for k in re.findall(r"auth\[(\w+)\]", " ".join(install_event()))),
]
keys = st.one_of(
    st.sampled_from(_KEYS),
    st.builds(lambda k: k + "[0]", st.sampled_from(_KEYS)),  # an array where a value is expected
    st.text(max_size=10),
)
values = st.one_of(
    st.sampled_from(["ONAPPINSTALL", "onappuninstall", "", " ", "1", "0", "Y", MEMBER, ACCESS]),
    st.text(alphabet="0123456789²٣", min_size=1, max_size=30),
    st.text(max_size=40),
)


@given(
    st.dictionaries(keys, values, max_size=14),
    st.dictionaries(st.sampled_from(["DOMAIN", "PROTOCOL"]), values),
)
def test_any_form_is_read_or_refused_with_the_parsers_own_error(
    fields: dict[str, str], query: dict[str, str]
) -> None:
    try:
        form = parse_form(urlencode(fields))
    except EventPayloadError:
        return  # the receiver answers 400 for these before the install parser runs
    try:
        request = parse_app_request(form, query)
    except InstallPayloadError as exc:
        assert str(exc).endswith(".")
        return
    assert request.member_id and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", request.member_id)
    if isinstance(request, AppInstall):
        assert request.access_token.get_secret_value() and request.refresh_token.get_secret_value()
        assert request.client_endpoint is None or request.client_endpoint.endswith("/rest/")


tokens = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=64)
domains = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}(:[0-9]{2,5})?", fullmatch=True)


@settings(max_examples=60)  # generating from regexes is slow; the arbitrary-form test above covers breadth
@given(
    member=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    domain=domains,
    access=tokens,
    refresh=tokens,
    app_token=st.one_of(st.just(""), tokens),
    expires_in=st.integers(min_value=0, max_value=10**17),
    scope=st.lists(st.sampled_from(["user", "task", "calendar", "im", "department"]), max_size=5),
)
def test_a_well_formed_install_event_reads_back_exactly(
    member: str, domain: str, access: str, refresh: str, app_token: str, expires_in: int, scope: list[str]
) -> None:
    fields: dict[str, Any] = install_event(
        member_id=member,
        domain=domain,
        client_endpoint=f"https://{domain}/rest/",
        access_token=access,
        refresh_token=refresh,
        application_token=app_token,
        expires_in=str(expires_in),
        scope=",".join(scope),
    )
    request = read(fields)
    assert isinstance(request, AppInstall)
    assert (request.member_id, request.domain, request.expires_in) == (member, domain, expires_in)
    assert request.access_token.get_secret_value() == access
    assert request.refresh_token.get_secret_value() == refresh
    assert (request.application_token.get_secret_value() if request.application_token else "") == app_token
    assert request.scope == tuple(scope)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(keys, values, max_size=14), as_uninstall=st.booleans())
@example(fields=install_event(), as_uninstall=False)  # well-formed: stops at the unreachable OAuth server
@example(fields={"event": "ONAPPUNINSTALL", "auth[member_id]": MEMBER}, as_uninstall=True)  # no account: 404
def test_no_body_makes_the_install_endpoints_answer_500_or_store_anything(
    core_store: CoreStore, fields: dict[str, str], as_uninstall: bool
) -> None:
    """Through the real app and Core; the OAuth server address refuses connections (nothing listens
    on port 9), so a well-formed install stops at its verification with 503."""
    settings_ = AppSettings(
        client_id="local.x", client_secret=SecretStr("s"), token_url="http://127.0.0.1:9/"
    )
    with TestClient(create_app(core_store, app_settings=settings_)) as client:
        path = APP_EVENTS_PATH if as_uninstall else INSTALL_PATH
        answer = client.post(path, content=urlencode(fields), headers=FORM)
    assert answer.status_code in (400, 401, 404, 503), answer.text
    assert answer.json()["ok"] is False and answer.json()["error"].endswith(".")
    assert core_store.list_accounts() == []
