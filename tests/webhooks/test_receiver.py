"""The receiver authenticates, deduplicates and stores events in a real Core (embedded Postgres)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from bitrix24_assets.core import CoreDataError, CoreStore
from bitrix24_assets.core.postgres import PostgresStore
from bitrix24_assets.webhooks import ReceiverSettings, create_app
from tests.bitrix24.test_events import forms

from .conftest import FORM, TOKEN_A, TOKEN_B, Accounts, event_body


def url(account_id: str) -> str:
    return f"/bitrix24/events/{account_id}"


def pending_for(store: CoreStore, account_id: str) -> list:
    return [e for e in store.pending_events(limit=1000) if e.integration_account_id == account_id]


def test_valid_event_is_stored_without_its_auth_block(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    response = client.post(url(accounts.a), content=event_body(), headers=FORM)
    assert response.status_code == 200
    assert response.json() == {"ok": True, "stored": True}
    [stored] = pending_for(core_store, accounts.a)
    assert stored.event == "ONTASKUPDATE"
    assert stored.payload["object_id"] == "123"
    assert stored.payload["entity"] == "tasks"
    assert "auth" not in stored.payload and TOKEN_A not in str(stored.payload)


def test_duplicate_delivery_is_stored_once(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    first = client.post(url(accounts.a), content=event_body(), headers=FORM)
    again = client.post(url(accounts.a), content=event_body(), headers=FORM)
    later = client.post(url(accounts.a), content=event_body(ts="1766047999"), headers=FORM)
    assert [r.json()["stored"] for r in (first, again, later)] == [True, False, True]
    assert len(pending_for(core_store, accounts.a)) == 2


@pytest.mark.parametrize(
    ("token", "expected_word"),
    [
        (None, "missing"),  # no auth[application_token] at all
        ("", "missing"),  # present but empty
        (TOKEN_A[:-1] + "x", "wrong"),  # one character off
        (TOKEN_B, "wrong"),  # a valid token, but of another account
    ],
)
def test_bad_tokens_are_refused_and_nothing_is_stored(
    client: TestClient, core_store: CoreStore, accounts: Accounts, token: str | None, expected_word: str
) -> None:
    response = client.post(url(accounts.a), content=event_body(token=token), headers=FORM)
    assert response.status_code == 401
    assert expected_word in response.json()["error"]
    assert pending_for(core_store, accounts.a) == []


def test_each_account_accepts_only_its_own_token(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    assert client.post(url(accounts.b), content=event_body(token=TOKEN_B), headers=FORM).status_code == 200
    assert client.post(url(accounts.b), content=event_body(token=TOKEN_A), headers=FORM).status_code == 401
    assert len(pending_for(core_store, accounts.b)) == 1


def test_account_without_a_stored_token_refuses_everything_and_says_how_to_fix(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    response = client.post(url(accounts.no_token), content=event_body(), headers=FORM)
    assert response.status_code == 401
    assert "credentials.application_token" in response.json()["error"]
    assert pending_for(core_store, accounts.no_token) == []


def test_domain_and_member_id_are_checked_when_the_account_records_them(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    ok = client.post(url(accounts.pinned), content=event_body(), headers=FORM)
    other_domain = client.post(
        url(accounts.pinned), content=event_body(domain="evil.bitrix24.ru", ts="2"), headers=FORM
    )
    other_member = client.post(
        url(accounts.pinned), content=event_body(member_id="m-2", ts="3"), headers=FORM
    )
    assert (ok.status_code, other_domain.status_code, other_member.status_code) == (200, 401, 401)
    assert "auth[domain]" in other_domain.json()["error"]
    assert len(pending_for(core_store, accounts.pinned)) == 1
    # an account without recorded domain accepts any domain (the token is the authenticity check)
    assert (
        client.post(url(accounts.a), content=event_body(domain="x.bitrix24.com"), headers=FORM).status_code
        == 200
    )


def test_rotated_token_is_accepted_at_once(
    client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    assert client.post(url(accounts.a), content=event_body(), headers=FORM).status_code == 200  # cached now
    core_store.update_credentials(accounts.a, {"application_token": "rotated-token"})
    response = client.post(url(accounts.a), content=event_body(token="rotated-token", ts="5"), headers=FORM)
    assert response.status_code == 200
    assert client.post(url(accounts.a), content=event_body(ts="6"), headers=FORM).status_code == 401


@pytest.mark.parametrize(
    "account_path",
    ["00000000-0000-0000-0000-00000000beef", "not-a-uuid", "1%27%20or%201=1"],
)
def test_unknown_account_is_404(client: TestClient, account_path: str) -> None:
    response = client.post(url(account_path), content=event_body(), headers=FORM)
    assert response.status_code == 404
    assert response.json()["ok"] is False


def test_oversized_body_is_413_by_header_and_by_stream(
    client: TestClient, core_store: CoreStore, accounts: Accounts, receiver_settings: ReceiverSettings
) -> None:
    big = event_body(extra={"data[PAD]": "x" * receiver_settings.max_body_bytes})
    assert client.post(url(accounts.a), content=big, headers=FORM).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer, size known only by reading
        body = big.encode()
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    response = client.post(url(accounts.a), content=chunks(), headers=FORM)
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]
    lying = client.post(url(accounts.a), content=big, headers={**FORM, "Content-Length": "10"})
    assert lying.status_code in (400, 413)  # the server reads only what Content-Length announces
    assert pending_for(core_store, accounts.a) == []


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (event_body("ONCRMDEALADD"), 400, "not handled here"),
        (event_body("ONTASKUPDATE", object_id="undefined"), 400, "no numeric"),
        (event_body("ONCALENDARENTRYADD", object_id=""), 400, "no numeric"),
        (event_body().replace("event=ONTASKUPDATE", "event=ONTASKUPDATE%FF"), 400, "not UTF-8"),
        ("&".join("f" for _ in range(1001)), 400, "form fields"),  # bounded like PHP max_input_vars
    ],
)
def test_malformed_bodies_get_one_clear_sentence(
    client: TestClient, core_store: CoreStore, accounts: Accounts, body: str, status: int, message: str
) -> None:
    response = client.post(url(accounts.a), content=body, headers=FORM)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert pending_for(core_store, accounts.a) == []


def test_token_is_checked_before_the_event_is_validated(client: TestClient, accounts: Accounts) -> None:
    response = client.post(url(accounts.a), content=event_body("ONCRMDEALADD", token="nope"), headers=FORM)
    assert response.status_code == 401


def test_json_bodies_are_refused(client: TestClient, accounts: Accounts) -> None:
    response = client.post(url(accounts.a), json={"event": "ONTASKUPDATE"})
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("event", "extra", "payload_check"),
    [
        # ONTASKADD: FIELDS_BEFORE is the literal 'undefined'
        ("ONTASKADD", {"data[FIELDS_BEFORE]": "undefined"}, lambda p: p["data"]["FIELDS_BEFORE"] is None),
        ("ONTASKDELETE", {"data[FIELDS_AFTER]": "undefined"}, lambda p: p["data"]["FIELDS_AFTER"] is None),
        ("ONCALENDARENTRYDELETE", {}, lambda p: p["entity"] == "calendar_events"),
        ("ONUSERADD", {"data[ACTIVE]": "1"}, lambda p: p["user_active"] is True),
        ("ONUSERADD", {"data[ACTIVE]": "N"}, lambda p: p["user_active"] is False),
    ],
)
def test_documented_payload_variants_are_stored(
    client: TestClient,
    core_store: CoreStore,
    accounts: Accounts,
    event: str,
    extra: dict[str, str],
    payload_check,
) -> None:
    body = event_body(event, "77", extra=extra)
    if "data[FIELDS_AFTER]" in extra:  # drop the id key the variant replaces
        body = body.replace("data%5BFIELDS_AFTER%5D%5BID%5D=77&", "")
    if "data[FIELDS_BEFORE]" in extra:
        body = body.replace("data%5BFIELDS_BEFORE%5D%5BID%5D=77&", "")
    response = client.post(url(accounts.a), content=body, headers=FORM)
    assert response.status_code == 200, response.json()
    [stored] = pending_for(core_store, accounts.a)
    assert stored.payload["object_id"] == "77"
    assert payload_check(stored.payload)


def test_secret_never_logged(
    client: TestClient, accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client.post(url(accounts.a), content=event_body(), headers=FORM)
    client.post(url(accounts.a), content=event_body(token=TOKEN_B), headers=FORM)
    client.post(url(accounts.b), content=event_body("ONCRMDEALADD", token=TOKEN_B), headers=FORM)
    client.post(url(accounts.a), content=event_body(object_id="x"), headers=FORM)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "stored" in text and "wrong" in text  # the log does say what happened...
    for secret in (TOKEN_A, TOKEN_B, "application_token="):
        assert secret not in text  # ... but never with the token


def test_healthz_reports_core_reachability(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"ok": True}


def test_healthz_and_events_answer_503_when_core_is_down(accounts: Accounts) -> None:
    down = PostgresStore("postgresql://core@127.0.0.1:9/core", timeout=1.0)  # nothing listens on port 9
    try:
        with TestClient(create_app(down)) as down_client:
            health = down_client.get("/healthz")
            event = down_client.post(url(accounts.a), content=event_body(), headers=FORM)
    finally:
        down.close()
    assert health.status_code == 503
    assert event.status_code == 503
    assert event.json() == {"ok": False, "error": "Core is not reachable; the event was not stored."}


# ---- malformed fields with a valid token: 400 and one sentence, never a 500, nothing stored -------------


@pytest.fixture
def roomy_client(core_store: CoreStore) -> Iterator[TestClient]:
    """The receiver with the default 64 KiB body limit (a 5,000-digit ts needs more than 4 KiB)."""
    settings = ReceiverSettings(token_recheck_seconds=0.0)
    with TestClient(create_app(core_store, settings=settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"ts": "²"}, "ts is not Unix seconds"),
        ({"ts": "9" * 5000}, "ts is not Unix seconds"),
        ({"ts": "١٧٦٦٠٤٧١٢٤"}, "ts is not Unix seconds"),
        ({"event_handler_id": "975; drop"}, "event_handler_id is not a handler id"),
        ({"data[TITLE]": "a\x00b"}, "NUL"),
    ],
)
def test_malformed_field_with_a_valid_token_is_400_and_nothing_is_stored(
    roomy_client: TestClient, core_store: CoreStore, accounts: Accounts, extra: dict[str, str], message: str
) -> None:
    body = event_body(ts=extra.pop("ts", "1766047124"), extra=extra)
    if "event_handler_id" in extra:
        body = body.replace("event_handler_id=975&", "")
    response = roomy_client.post(url(accounts.a), content=body, headers=FORM)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error and error.endswith(".")
    assert pending_for(core_store, accounts.a) == []


def test_onuseradd_with_an_unreadable_active_flag_is_400(
    roomy_client: TestClient, core_store: CoreStore, accounts: Accounts
) -> None:
    body = event_body("ONUSERADD", "5").replace("data%5BACTIVE%5D=Y", "data%5BACTIVE%5D=maybe")
    response = roomy_client.post(url(accounts.a), content=body, headers=FORM)
    assert response.status_code == 400 and "data[ACTIVE]" in response.json()["error"]
    assert pending_for(core_store, accounts.a) == []


class RefusingStore(PostgresStore):
    """The real store, whose inbox insert fails the way Core refuses a value (SQLSTATE class 22)."""

    def put_event(self, account_id: str, event: str, payload: dict, dedupe_key: str) -> bool:
        raise CoreDataError("Core refused the value (invalid_text_representation)")


def test_data_core_refuses_is_400_not_unreachable(core_dsn: str, accounts: Accounts) -> None:
    store = RefusingStore(core_dsn, max_size=2)
    try:
        with TestClient(create_app(store)) as refusing:
            response = refusing.post(url(accounts.a), content=event_body(), headers=FORM)
    finally:
        store.close()
    assert response.status_code == 400
    assert response.json()["error"] == "Core refused the data of this ONTASKUPDATE event; it was not stored."


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(forms())
def test_any_body_with_a_valid_token_is_stored_or_refused_with_400(
    roomy_client: TestClient, core_store: CoreStore, accounts: Accounts, raw: str
) -> None:
    before = len(pending_for(core_store, accounts.a))
    body = f"{raw}&auth%5Bapplication_token%5D={TOKEN_A}"  # last, so it is the token the receiver reads
    response = roomy_client.post(url(accounts.a), content=body.encode("utf-8", "surrogatepass"), headers=FORM)
    after = len(pending_for(core_store, accounts.a))
    assert response.status_code in (200, 400), response.text
    answer = response.json()
    if response.status_code == 400:
        assert answer["ok"] is False and answer["error"].endswith(".")
        assert after == before  # nothing stored, not even part of it
    else:
        assert after == before + int(answer["stored"])
