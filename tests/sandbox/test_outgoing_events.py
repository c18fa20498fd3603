"""Outgoing events (docs/bitrix24-rest-api.md §7.2-7.3): form-encoded PHP-nested POSTs to a handler, no retry.

A tiny local HTTP server stands in for the handler; tests wait on its queue (not on time).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from .rest import post, result

TOKEN = "app-token-123"


class Receiver:
    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode()
                outer.received.put((self.headers.get("Content-Type", ""), dict(parse_qsl(body))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/handler"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def next(self) -> dict[str, str]:
        content_type, fields = self.received.get(timeout=10)
        assert content_type == "application/x-www-form-urlencoded"
        return fields


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture
def portal(sandbox_factory, receiver):
    return sandbox_factory(
        event_handler_url=receiver.url, application_token=TOKEN, users=10, tasks=10, events=5
    )


def test_task_events_have_the_documented_payloads(portal, receiver):
    task_id = result(post(portal, "tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 1}}))["task"][
        "id"
    ]
    added = receiver.next()
    assert added["event"] == "ONTASKADD" and added["event_handler_id"] == "1"
    assert added["data[FIELDS_AFTER][ID]"] == task_id and added["data[FIELDS_BEFORE]"] == "undefined"
    assert added["data[IS_ACCESSIBLE_BEFORE]"] == "N" and added["data[IS_ACCESSIBLE_AFTER]"] == "undefined"
    assert added["auth[application_token]"] == TOKEN and added["auth[member_id]"] == portal.portal.member_id
    assert added["auth[client_endpoint]"] == f"{portal.base_url}/rest/"
    assert added["auth[server_endpoint]"] == "https://oauth.bitrix.info/rest/"
    assert added["auth[domain]"] == portal.base_url.split("://")[1] and added["ts"].isdigit()

    post(portal, "tasks.task.update", {"taskId": task_id, "fields": {"TITLE": "t2"}})
    updated = receiver.next()
    assert updated["event"] == "ONTASKUPDATE"
    assert updated["data[FIELDS_BEFORE][ID]"] == updated["data[FIELDS_AFTER][ID]"] == task_id
    assert updated["data[IS_ACCESSIBLE_BEFORE]"] == updated["data[IS_ACCESSIBLE_AFTER]"] == "undefined"

    post(portal, "tasks.task.delete", {"taskId": task_id})
    deleted = receiver.next()
    assert deleted["event"] == "ONTASKDELETE" and deleted["data[FIELDS_BEFORE][ID]"] == task_id
    assert deleted["data[FIELDS_AFTER]"] == "undefined" and deleted["data[IS_ACCESSIBLE_AFTER]"] == "N"


def test_calendar_events_carry_lower_case_id(portal, receiver):
    event_id = result(
        post(
            portal,
            "calendar.event.add",
            {
                "type": "user",
                "ownerId": 1,
                "name": "Встреча",
                "from": "2030-01-01T10:00:00+03:00",
                "to": "2030-01-01T11:00:00+03:00",
            },
        )
    )
    add = receiver.next()
    assert add["event"] == "ONCALENDARENTRYADD" and add["data[id]"] == str(event_id)
    post(portal, "calendar.event.update", {"id": event_id, "type": "user", "ownerId": 1, "name": "X"})
    update = receiver.next()
    assert update["event"] == "ONCALENDARENTRYUPDATE" and update["data[id]"] == str(event_id)
    post(portal, "calendar.event.delete", {"id": event_id})
    delete = receiver.next()
    assert delete["event"] == "ONCALENDARENTRYDELETE" and delete["data[id]"] == str(event_id)


def test_admin_changes_fire_events_too(portal, receiver):
    user = portal.admin.add_user(NAME="Анна", LAST_NAME="Козлова", EMAIL="anna@example.ru", UF_DEPARTMENT=[1])
    added = receiver.next()
    assert added["event"] == "ONUSERADD" and added["data[ID]"] == user["ID"]
    assert (
        added["data[NAME]"] == "Анна"
        and added["data[ACTIVE]"] == "1"
        and added["data[UF_DEPARTMENT][0]"] == "1"
    )
    portal.admin.update_task(1, TITLE="changed in the UI")
    assert receiver.next()["event"] == "ONTASKUPDATE"
    portal.admin.delete_event(1)
    deleted = receiver.next()
    assert deleted["event"] == "ONCALENDARENTRYDELETE" and deleted["data[id]"] == "1"


def test_handler_can_be_configured_later_and_failures_are_not_retried(sandbox_factory, receiver):
    portal = sandbox_factory(users=5, tasks=5, events=0)
    post(portal, "tasks.task.update", {"taskId": 1, "fields": {"TITLE": "x"}})
    assert receiver.received.empty()  # not configured: nothing sent
    portal.admin.set_event_handler("http://127.0.0.1:9/unreachable", TOKEN)
    post(portal, "tasks.task.update", {"taskId": 1, "fields": {"TITLE": "y"}})
    portal.admin.set_event_handler(receiver.url, TOKEN)
    post(portal, "tasks.task.update", {"taskId": 2, "fields": {"TITLE": "z"}})
    assert receiver.next()["data[FIELDS_AFTER][ID]"] == "2"
    expected = (1, 1)
    for _ in range(500):  # the sender counts after the handler answered: wait for that outcome
        counters = portal.admin.counters()
        if (counters["events_sent"], counters["events_failed"]) == expected:
            break
    assert (counters["events_sent"], counters["events_failed"]) == expected
