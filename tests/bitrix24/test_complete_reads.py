"""A full read is proven complete or fails with one sentence: never a short set returned silently.

Real sandbox portals over HTTP on 127.0.0.1 (instant profile, tiny time scale). Faults come from the
sandbox's fault injection; targeted contradictions (a probe page emptied, a page shortened, a count
without total, a portal that ignores a filter) from :class:`Tamper`, an httpx transport that forwards
every request to the sandbox over real HTTP and rewrites chosen answers on the way back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bitrix24_assets.bitrix24 import Bitrix24Client, EventsRead, ListRead, ListSpec, Progress, errors

SCALE = 0.001
KINDS = ["500", "502", "503", "drop", "truncate", "slow", "query_limit", "garbled", "empty", "missing_key"]
PORTAL = {"users": 300, "tasks": 3000, "events": 150}

Edit = Callable[[str, dict[str, Any], dict[str, Any]], dict[str, Any] | None]


class Tamper(httpx.BaseTransport):
    """Forwards to the sandbox over HTTP; ``edit(method, sent, body)`` may return a changed answer,
    ``edit_request(method, sent)`` a changed request body."""

    def __init__(self, edit: Edit | None = None, edit_request: Callable[..., Any] | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.edit, self.edit_request = edit, edit_request
        self.edited = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1]
        sent = json.loads(request.content) if request.content else {}
        if self.edit_request is not None:
            changed = self.edit_request(method, sent)
            if changed is not None:
                headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
                request = httpx.Request(request.method, request.url, headers=headers, json=changed)
        response = self.inner.handle_request(request)
        content = response.read()
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        new = self.edit(method, sent, body) if self.edit is not None and isinstance(body, dict) else None
        if new is None:
            return httpx.Response(
                response.status_code, content=content, headers={"content-type": "application/json"}
            )
        self.edited += 1
        return httpx.Response(response.status_code, json=new)

    def close(self) -> None:
        self.inner.close()


def make(portal: Any, **kw: Any) -> Bitrix24Client:
    return Bitrix24Client(webhook_url=portal.webhook_url, time_scale=SCALE, **kw)


def ids_of(rows: Any, key: str) -> list[int]:
    return sorted(int(r[key]) for r in rows)


def one_sentence(exc: BaseException, portal: Any) -> str:
    text = str(exc)
    assert "\n" not in text and text.endswith(".") and "/rest/1/***/" in text
    assert portal.webhook_url.rstrip("/").rsplit("/", 1)[1] not in text + repr(exc)
    return text


# -- every fault kind, 5% and 20% ----------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.05, 0.2])
@pytest.mark.parametrize("kind", KINDS)
def test_full_reads_under_faults_end_in_parity_or_an_error(
    sandbox_factory: Any, kind: str, rate: float
) -> None:
    portal = sandbox_factory(**PORTAL)
    portal.admin.set_faults(rate=rate, kinds=[kind], seed=int(rate * 100) + len(kind), slow_seconds=5)
    outcomes = []
    with make(portal) as client:
        for _ in range(3):  # three syncs' worth of requests, so 5% still means several faults
            for name, read_all, stored in (
                ("users", lambda: client.get_users(select=["ID"]), portal.state.users.ids),
                ("tasks", lambda: client.get_tasks(select=["ID"]), portal.state.tasks.ids),
            ):
                try:
                    read = read_all()
                    rows = list(read)
                except errors.Bitrix24Error as exc:
                    one_sentence(exc, portal)
                    outcomes.append((name, "error"))
                    continue
                key = "ID" if name == "users" else "id"
                assert ids_of(rows, key) == stored, f"{name}: a short or wrong set came back silently"
                assert isinstance(read, ListRead) and read.verified and read.counted_total == len(stored)
                outcomes.append((name, "parity"))
        stats = client.stats.as_dict()
    faults = portal.admin.counters()["faults"].get(kind, 0)
    assert faults > 0  # the seeds make every case inject some (5%: 1 to 4 faults in ~40 requests)
    if kind in ("empty", "missing_key"):
        assert stats["broken_answers"] > 0  # detected as broken and sent again, never a short page
    if kind != "slow":
        assert stats["retries"] > 0
    assert len(outcomes) == 6


@pytest.mark.parametrize("kind", ["empty", "missing_key"])
def test_broken_batch_answers_are_retried_then_fail_with_one_sentence(
    sandbox_factory: Any, kind: str
) -> None:
    portal = sandbox_factory(**PORTAL)
    portal.admin.set_faults(rate=1.0, kinds=[kind], methods=["batch"], count=4)
    with make(portal) as client:
        assert ids_of(client.get_tasks(select=["ID"]), "id") == portal.state.tasks.ids
        assert client.stats.broken_answers == 4 and client.stats.retries >= 4
    portal.admin.set_faults(rate=1.0, kinds=[kind], methods=["batch"])
    with make(portal, max_attempts=3) as client, pytest.raises(errors.IncompleteReadError) as info:
        list(client.get_users(select=["ID"]))
    text = one_sentence(info.value, portal)
    assert "(INCOMPLETE_READ)" in text and "neither a result nor an error" in text
    assert info.value.retryable and not info.value.is_configuration_error
    assert portal.admin.counters()["faults"][kind] == 4 + 3


def test_empty_answers_to_plain_calls_are_not_an_empty_portal(sandbox_factory: Any) -> None:
    """Every list read goes through ``batch``, so an empty 200 never passes for an empty page; the
    scope list (asked with a plain call) refuses an empty answer too."""
    portal = sandbox_factory(users=120, tasks=400, events=0)
    portal.admin.set_faults(rate=1.0, kinds=["empty"], count=2)
    with make(portal) as client:
        assert client.scopes() >= {"user", "task", "calendar"}
        assert client.stats.broken_answers == 2
        requests = client.stats.requests
        assert client.scopes() is client.scopes() and client.stats.requests == requests  # cached
        portal.admin.set_faults(rate=1.0, kinds=["empty"], count=3)
        assert len(client.get_departments()) == len(portal.state.departments)


# -- contradictions --------------------------------------------------------------------------------


def _probe_asc(sent: dict[str, Any]) -> bool:
    return "asc" in (sent.get("cmd") or {})


def test_empty_ascending_probe_beside_a_full_descending_one_is_retried_then_raised(
    sandbox_factory: Any,
) -> None:
    portal = sandbox_factory(**PORTAL)
    budget = {"left": 2}

    def empty_asc(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method != "batch" or not _probe_asc(sent) or budget["left"] == 0:
            return None
        budget["left"] -= 1
        body["result"]["result"]["asc"] = {"tasks": []} if "tasks" in sent["cmd"]["asc"] else []
        return body

    with make(portal, transport=Tamper(empty_asc)) as client:
        assert ids_of(client.get_tasks(select=["ID"]), "id") == portal.state.tasks.ids
        assert client.stats.broken_answers == 2
    budget["left"] = 99
    tampered = make(portal, transport=Tamper(empty_asc), max_attempts=2)
    with tampered as client, pytest.raises(errors.IncompleteReadError, match="ascending probe page is empty"):
        list(client.get_users(select=["ID"]))


def _lane_page(sent: dict[str, Any]) -> list[str]:
    return [k for k in (sent.get("cmd") or {}) if k.startswith("p")]


def test_a_lane_ending_early_is_caught_by_the_count(sandbox_factory: Any) -> None:
    """A bounded lane's page cut short (a lost row there ends the lane): only the count can tell."""
    portal = sandbox_factory(**PORTAL)
    target = portal.state.tasks.ids[1500]
    cut = {"done": False}

    def shorten(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method != "batch" or cut["done"]:
            return None
        for key, command in sent["cmd"].items():
            rows = (body["result"]["result"].get(key) or {}).get("tasks") if key.startswith("p") else None
            bounded = "%3C%3DID" in command or "[<=ID]" in command
            if bounded and rows and any(int(r["id"]) == target for r in rows):
                body["result"]["result"][key]["tasks"] = [r for r in rows if int(r["id"]) < target]
                cut["done"] = True
                return body
        return None

    with make(portal, transport=Tamper(shorten)) as client:
        read = client.get_tasks(select=["ID"])
        with pytest.raises(errors.IncompleteReadError) as info:
            list(read)
    assert cut["done"]
    text = one_sentence(info.value, portal)
    assert f"but the portal counts {len(portal.state.tasks)}" in text and "with ID up to" in text


def test_count_without_total_is_broken(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=120, tasks=50, events=0)

    def drop_total(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "batch" and "count" in sent["cmd"]:
            body["result"]["result_total"] = []
            return body
        return None

    expected = "counted request came back with 50 records"
    tampered = make(portal, transport=Tamper(drop_total), max_attempts=2)
    with tampered as client, pytest.raises(errors.IncompleteReadError, match=expected):
        list(client.get_users(select=["ID"]))


def test_a_count_saying_more_than_an_empty_probe_fails(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=60, tasks=0, events=0)

    def no_users(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "batch" and _probe_asc(sent):
            body["result"]["result"] = {"asc": [], "desc": []}
            return body
        return None

    with make(portal) as client:
        empty = client.get_tasks(select=["ID"])
        assert list(empty) == [] and empty.verified and empty.counted_total == 0
    expected = "although the probe found none but the portal counts 60"
    tampered = make(portal, transport=Tamper(no_users))
    with tampered as client, pytest.raises(errors.IncompleteReadError, match=expected):
        list(client.get_users(select=["ID"]))


def test_open_ended_lane_must_reach_the_probes_highest_id(sandbox_factory: Any) -> None:
    """Ascending pages that keep ending below the probe's highest ID while a descending page still
    shows rows above: a contradiction, not the end of the list."""
    portal = sandbox_factory(**PORTAL)
    top = portal.state.tasks.ids[-1]

    def hide_top(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method != "batch" or _probe_asc(sent):
            return None
        for key, command in sent["cmd"].items():
            sub = body["result"]["result"].get(key)
            if key.startswith("p") and "asc" in command and isinstance(sub, dict):
                sub["tasks"] = [r for r in sub["tasks"] if int(r["id"]) < top - 30]
        return body

    with (
        make(portal, transport=Tamper(hide_top)) as client,
        pytest.raises(errors.IncompleteReadError) as info,
    ):
        list(client.get_tasks(select=["ID"]))
    assert "keep ending at ID" in one_sentence(info.value, portal)


def test_changes_during_the_read_end_in_parity(sandbox_factory: Any) -> None:
    """Rows deleted (the highest one included) and added while lanes run: every row that existed for
    the whole read is read, nothing is read twice or invented, and the count still proves it."""
    portal = sandbox_factory(**PORTAL)
    before = set(portal.state.tasks.ids)
    deleted: set[int] = set()
    added: set[int] = set()
    calls = {"n": 0}

    def change(p: Progress) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # after the probe: its highest ID goes, so the open-ended lane ends below it
            for task_id in portal.state.tasks.ids[-3:]:
                portal.admin.delete_task(task_id)
                deleted.add(task_id)
        if calls["n"] in (2, 4):
            for task_id in portal.state.tasks.ids[100 * calls["n"] : 100 * calls["n"] + 5]:
                portal.admin.delete_task(task_id)
                deleted.add(task_id)
            added.add(int(portal.admin.add_task(title="added mid-read", responsible_id=1)["id"]))

    with make(portal) as client:
        read = client.get_tasks(select=["ID"], progress=change)
        ids = [int(t["id"]) for t in read]
    assert len(ids) == len(set(ids))
    assert before - deleted <= set(ids) <= before | added
    assert read.verified and read.counted_total is not None and read.counted_total <= len(before)


def test_incremental_reads_skip_the_count(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=20, tasks=300, events=0)
    sent: list[str] = []

    def record(method: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
        sent.extend((body.get("cmd") or {}).values())

    with make(portal, transport=Tamper(record)) as client:
        full = client.get_tasks(select=["ID"])
        assert len(list(full)) == 300 and full.verified and full.counted_total == 300
        assert sum("start=0" in c.split("&") for c in sent) == 1  # the one counted request
        sent.clear()
        read = client.get_tasks(select=["ID"], changed_since=datetime.now(UTC) - timedelta(days=3650))
        assert len(list(read)) == 300
        assert not read.verified and read.counted_total is None
    assert sent and not any("start=0" in c.split("&") for c in sent)  # an incremental read counts nothing


# -- counted paging ----------------------------------------------------------------------------------

COUNTED_USERS = ListSpec("user.get", keyset=False)


def _counted(portal: Any, edit: Edit, **kw: Any) -> tuple[ListRead, list[dict[str, Any]]]:
    with make(portal, transport=Tamper(edit), **kw) as client:
        read = client.iter_list("user.get", {"sort": "ID", "order": "ASC"}, spec=COUNTED_USERS)
        return read, list(read)


def _page_at(sent: dict[str, Any], start: int) -> bool:
    return f"start={start}" in (sent.get("cmd") or {}).get("page", "").split("&")


def test_counted_paging_is_verified_by_its_total(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=230, tasks=0, events=0)
    read, rows = _counted(portal, lambda m, s, b: None)
    assert ids_of(rows, "ID") == portal.state.users.ids and read.verified and read.counted_total == 230


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ("no_next", "ends the read after 150 of 230 records"),
        ("empty", "is empty although the page before promised more"),
        ("repeat", "held 180 distinct records but the portal counts 230"),
    ],
)
def test_counted_paging_contradictions(sandbox_factory: Any, spoil: str, message: str) -> None:
    portal = sandbox_factory(users=230, tasks=0, events=0)
    pages: dict[int, Any] = {}

    def edit(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method != "batch" or "page" not in sent["cmd"]:
            return None
        inner = body["result"]
        start = next(s for s in range(0, 300, 50) if _page_at(sent, s))
        pages[start] = inner["result"]["page"]
        if spoil == "no_next" and start == 100:
            inner["result_next"] = []
        elif spoil == "empty" and start == 150:
            inner["result"]["page"] = []
        elif spoil == "repeat" and start == 150:
            inner["result"]["page"] = pages[100]  # offsets shifted: the same rows again
        else:
            return None
        return body

    with pytest.raises(errors.IncompleteReadError, match=message) as info:
        _counted(portal, edit, max_attempts=2)
    one_sentence(info.value, portal)


# -- records without a readable ID -------------------------------------------------------------------


def test_records_without_a_readable_id_are_yielded_and_the_read_still_proven(sandbox_factory: Any) -> None:
    portal = sandbox_factory(**PORTAL)
    ids = portal.state.tasks.ids
    # row 49 of the probe page and of later pages feeds the next page's `$result[...][49][id]`
    broken = {ids[49]: {"id": {"x": 1}}, ids[149]: {"id": "²"}, ids[1234]: {"id": "٣"}, ids[-1]: {"id": "-5"}}
    for task_id, fields in broken.items():
        portal.admin.override("tasks", task_id, fields)
    portal.admin.override("tasks", ids[2000], remove=["id"])
    portal.admin.override("users", portal.state.users.ids[49], {"ID": {"x": 1}})
    with make(portal) as client:
        tasks_read = client.get_tasks(select=["ID", "TITLE"])
        tasks = list(tasks_read)
        users_read = client.get_users(select=["ID"])
        users = list(users_read)
    readable = [t for t in tasks if isinstance(t.get("id"), str) and t["id"].isascii() and t["id"].isdigit()]
    assert len(tasks) == len(ids)  # every record yielded exactly once, readable or not
    assert sorted(int(t["id"]) for t in readable) == sorted(set(ids) - set(broken) - {ids[2000]})
    assert sorted(str(t.get("id")) for t in tasks if t not in readable) == sorted(
        ["{'x': 1}", "²", "٣", "-5", "None"]
    )
    # the highest task renders "-5": the probe's highest readable ID is the one below it
    assert tasks_read.verified and tasks_read.counted_total == len(ids) - 1
    assert len(users) == len(portal.state.users) and users_read.verified
    assert sum(1 for u in users if u["ID"] == {"x": 1}) == 1


def test_dropped_records_are_counted_by_reason(sandbox_factory: Any) -> None:
    portal = sandbox_factory(**PORTAL)
    done: set[str] = set()

    def spoil(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method != "batch" or _probe_asc(sent) or "p0" not in sent["cmd"] or done >= {"dup", "out", "obj"}:
            return None
        rows = body["result"]["result"]["p0"]["tasks"]
        if "[<=ID]" not in sent["cmd"]["p0"] and "%3C%3DID" not in sent["cmd"]["p0"]:
            return None  # bounded lanes only
        if "dup" not in done:
            rows.insert(10, dict(rows[10]))  # a row sent twice
            done.add("dup")
        elif "out" not in done:
            rows.insert(20, {**rows[20], "id": "999999999"})  # beyond the lane's upper ID
            done.add("out")
        else:
            rows.insert(30, "not a record")
            done.add("obj")
        return body

    with make(portal, transport=Tamper(spoil)) as client:
        read = client.get_tasks(select=["ID"])
        ids = [int(t["id"]) for t in read]
    assert sorted(ids) == portal.state.tasks.ids
    assert read.dropped == {"repeated ID": 1, "ID outside the lane's range": 1, "not an object": 1}
    assert read.verified


# -- events, e-mail lookup, batch --------------------------------------------------------------------


def test_events_read_names_the_calendars_read(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=120, tasks=0, events=300)
    inactive = next(u.id for u in portal.state.users.rows.values() if not u.active)
    unreadable = next(u.id for u in portal.state.users.rows.values() if u.active and u.id > 1)
    portal.admin.override("users", unreadable, {"ID": "7a"})
    now = datetime.now(UTC)
    window = (now - timedelta(days=400), now + timedelta(days=400))
    with make(portal) as client:
        read = client.get_events(*window)
        events = list(read)
    assert isinstance(read, EventsRead) and read.verified
    assert ("company_calendar", "0") in read.owners and ("user", "1") in read.owners
    assert ("user", str(inactive)) not in read.owners and ("user", str(unreadable)) not in read.owners
    assert any(t == "group" for t, _ in read.owners)
    assert len({e["ID"] for e in events}) == len(events)
    owners = {(e["CAL_TYPE"], e["OWNER_ID"]) for e in events}
    assert owners <= read.owners
    if any(e.is_meeting for e in portal.state.events.rows.values()):
        assert read.dropped.get("attendee copy of a meeting", 0) >= 0


def test_a_calendar_missing_from_the_answer_is_an_error_not_an_empty_calendar(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=60, tasks=0, events=200)
    key = "user_1"
    budget = {"left": 1}

    def drop_calendar(method: str, sent: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        if method == "batch" and key in sent["cmd"] and budget["left"]:
            budget["left"] -= 1
            inner = body["result"]
            inner["result"] = {k: v for k, v in inner["result"].items() if k != key}
            return body
        return None

    now = datetime.now(UTC)
    window = (now - timedelta(days=400), now + timedelta(days=400))
    with make(portal) as client:
        expected = {e["ID"] for e in client.get_events(*window)}
    with make(portal, transport=Tamper(drop_calendar)) as client:
        assert {e["ID"] for e in client.get_events(*window)} == expected  # retried
        assert client.stats.broken_answers == 1
    budget["left"] = 99
    expected = r"neither a result nor an error for 1 of its .*user_1"
    tampered = make(portal, transport=Tamper(drop_calendar), max_attempts=2)
    with tampered as client, pytest.raises(errors.IncompleteReadError, match=expected):
        client.get_events(*window)


def test_user_by_email_never_returns_another_user(sandbox_factory: Any) -> None:
    portal = sandbox_factory(users=60, tasks=0, events=0)
    someone = next(u for u in portal.state.users.rows.values() if u.email)

    def ignore_filter(method: str, sent: dict[str, Any]) -> dict[str, Any] | None:
        return {} if method == "user.get" else None  # a portal that ignores the filter

    with make(portal, transport=Tamper(edit_request=ignore_filter)) as client:
        assert client.get_user_by_email("nobody@nowhere.invalid") is None
        found = client.get_user_by_email(f"  {someone.email.upper()} ")
        assert found is None or found["ID"] == str(someone.id)
    with make(portal) as client:
        assert client.get_user_by_email(someone.email.upper())["ID"] == str(someone.id)
        assert client.get_user_by_email("   ") is None
