"""Supabase backend, at the wire and end to end.

* Wire tests: supabase-py is given an ``httpx.Client`` with a ``MockTransport`` (no server at all);
  we assert the exact URL, headers and JSON body of each RPC POST and feed back PostgREST-shaped
  responses and errors.
* End to end: the same SupabaseStore talks real HTTP to ``postgrest_standin`` (a tiny Starlette app
  that stands in for PostgREST: only its RPC route) which runs the SQL functions on the real
  embedded Postgres. PostgREST itself, the Supabase gateway and JWT checking are the stand-ins.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import psycopg
import pytest

from bitrix24_assets.core import (
    AccountNotFoundError,
    CalendarEventRow,
    CoreConfigurationError,
    CoreUnavailableError,
    EmployeeRow,
    MergeCounts,
    PostgresStore,
    TaskRow,
)
from bitrix24_assets.core.errors import MassRemovalError
from bitrix24_assets.core.models import RemovalGuard, UnresolvedPeople
from bitrix24_assets.core.staging import TASKS, fingerprint
from bitrix24_assets.core.supabase import SupabaseStore

from .conftest import add_portal
from .postgrest_standin import running_standin

URL = "https://proj.supabase.co"
KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
ACCOUNT = "0b7a3e8e-4a4f-4d8b-9f3e-2f1f0e6a9d11"


def mock_store(handler, **kw) -> SupabaseStore:  # type: ignore[no-untyped-def]
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return SupabaseStore(URL, KEY, http_client=client, backoff_seconds=0, **kw)


def test_merge_tasks_posts_rpc_with_exact_url_headers_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        figures = {"inserted": 1, "updated": 0, "unchanged": 0, "removed": 0}
        return httpx.Response(200, json=[{**figures, "rows_in_table": 4, "live_rows": 3}])

    store = mock_store(handler)
    due = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = TaskRow(bitrix_id="7", title="Ёлка 🎄", deadline=due, responsible_bitrix_id="3")
    counts = store.merge_tasks(ACCOUNT, [row], full=False)
    assert counts == MergeCounts(inserted=1, rows_in_table=4, live_rows=3)
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == f"{URL}/rest/v1/rpc/merge_tasks"
    assert request.headers["apikey"] == KEY
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-profile"] == "core"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "p_account": ACCOUNT,
        "p_rows": [
            {
                "bitrix_id": "7",
                "title": "Ёлка 🎄",
                "deadline": "2025-01-02T03:04:05Z",
                "responsible_bitrix_id": "3",
                "metadata": {},
                "ord": 0,
                # the fingerprint the Postgres backend would COPY for the same row (see test_fingerprints)
                "source_hash": fingerprint(TASKS, row).hex(),
            }
        ],
        "p_full": False,
    }


def test_big_full_merge_is_chunked_and_removal_is_checked_first_and_runs_last() -> None:
    bodies: list[tuple[str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append((request.url.path.rsplit("/", 1)[1], body))
        if request.url.path.endswith("remove_missing"):
            removed = 0 if body.get("p_dry_run") else 4
            after = {"removed": removed, "rows_in_table": 9, "live_rows": 9 - removed}
            return httpx.Response(200, json=[after])
        return httpx.Response(
            200,
            json=[
                {
                    "inserted": len(body["p_rows"]),
                    "updated": 0,
                    "unchanged": 0,
                    "removed": 0,
                    "rows_in_table": None,
                    "live_rows": None,
                }
            ],
        )

    store = mock_store(handler, chunk_rows=2)
    rows = [EmployeeRow(bitrix_id=str(i)) for i in range(5)]
    guard = RemovalGuard(max_share=0.5)
    counts = store.merge_employees(ACCOUNT, rows, full=True, keep_ids=["7"], guard=guard)
    assert counts == MergeCounts(inserted=5, removed=4, rows_in_table=9, live_rows=5)
    assert [name for name, _ in bodies] == ["remove_missing"] + ["merge_employees"] * 3 + ["remove_missing"]
    chunks = [b for _, b in bodies[1:4]]
    assert [len(b["p_rows"]) for b in chunks] == [2, 2, 1]
    assert all(b["p_full"] is False and b["p_counts"] is False for b in chunks)
    assert all(set(b) == {"p_account", "p_rows", "p_full", "p_counts"} for b in chunks)
    assert [r["ord"] for b in chunks for r in b["p_rows"]] == [0, 1, 2, 3, 4]
    removal = {
        "p_account": ACCOUNT,
        "p_entity": "employees",
        "p_keep": ["0", "1", "2", "3", "4", "7"],
        "p_guard": {"max_share": 0.5, "min_rows": 10, "allow": False},
    }
    # checked before any chunk is written, removed (and checked again) after the last one
    assert bodies[0][1] == {**removal, "p_dry_run": True}
    assert bodies[4][1] == removal


def test_single_chunk_full_merge_sends_keep_ids_guard_window_and_owners() -> None:
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=[{"inserted": 1, "rows_in_table": 1, "live_rows": 1}])

    store = mock_store(handler)
    window = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    row = CalendarEventRow(bitrix_id="5", name="Meeting")
    counts = store.merge_events(
        ACCOUNT,
        [row, CalendarEventRow(bitrix_id="6", name="rejected twin")],
        full=True,
        window=window,
        owners=frozenset({("user", "3"), ("company_calendar", "0")}),
        keep_ids={"6"},
    )
    assert counts == MergeCounts(inserted=1, rows_in_table=1, live_rows=1)
    (body,) = bodies
    assert [r["bitrix_id"] for r in body["p_rows"]] == ["5"]  # a kept id is never written
    assert {k: v for k, v in body.items() if k != "p_rows"} == {
        "p_account": ACCOUNT,
        "p_full": True,
        "p_from": "2025-01-01T00:00:00+00:00",
        "p_to": "2025-02-01T00:00:00+00:00",
        "p_owners": [["company_calendar", "0"], ["user", "3"]],
        "p_keep": ["6"],
        "p_guard": {"max_share": 0.2, "min_rows": 10, "allow": False},
    }


def test_mass_removal_answer_becomes_mass_removal_error() -> None:
    """What PostgREST answers for core.check_removal's RAISE: the SQLSTATE and the figures."""
    details = (
        '{"entity" : "tasks", "live" : 3000, "removing" : 3000, "max_share" : 0.2, "min_rows" : 10,'
        ' "empty_batch" : true}'
    )
    body = {
        "code": "BX001",
        "message": "a full merge of tasks would remove 3000 of 3000 live rows",
        "details": details,
        "hint": "confirm the removal with the guard's allow, or check the read",
    }
    store = mock_store(lambda request: httpx.Response(400, json=body))
    with pytest.raises(MassRemovalError) as info:
        store.merge_tasks(ACCOUNT, [], full=True)
    error = info.value
    assert (error.entity, error.live, error.removing, error.max_share) == ("tasks", 3000, 3000, 0.2)
    assert error.empty_batch and not error.retryable
    assert "tasks" in str(error) and "3,000" in str(error) and "\n" not in str(error)


def test_transient_gateway_errors_are_retried() -> None:
    answers = iter(
        [
            httpx.Response(503, text="upstream"),
            httpx.Response(502, text="bad gateway"),
            httpx.Response(200, json=True),
        ]
    )
    store = mock_store(lambda request: next(answers))
    assert store.put_event(ACCOUNT, "ONTASKADD", {"FIELDS": {"ID": "1"}}, "k1") is True


def test_unreachable_supabase_is_one_sentence_without_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = mock_store(handler, attempts=2)
    with pytest.raises(CoreUnavailableError) as info:
        store.list_accounts()
    assert str(info.value).startswith(f"Supabase at {URL} is unreachable")
    assert KEY not in str(info.value) and KEY not in repr(store)


@pytest.mark.parametrize(
    ("status", "body", "error", "needle"),
    [
        # schema core not in the project's exposed schemas
        (
            406,
            {"code": "PGRST106", "message": "Invalid schema: core"},
            CoreConfigurationError,
            "Exposed schemas",
        ),
        # migrations not applied (or schema cache stale)
        (
            404,
            {"code": "PGRST202", "message": "Could not find the function core.merge_tasks"},
            CoreConfigurationError,
            "bitrix24-core migrate",
        ),
        # grants missing for the role
        (
            403,
            {"code": "42501", "message": "permission denied for schema core"},
            CoreConfigurationError,
            "grant the role access",
        ),
        # anon key instead of the service-role key
        (401, {"code": "PGRST301", "message": "JWSError"}, CoreConfigurationError, "service_role key"),
        (
            400,
            {"code": "P0002", "message": f"integration account {ACCOUNT} does not exist"},
            AccountNotFoundError,
            ACCOUNT,
        ),
    ],
)
def test_known_postgrest_failures_become_clear_errors(status, body, error, needle) -> None:  # type: ignore[no-untyped-def]
    store = mock_store(lambda request: httpx.Response(status, json=body))
    with pytest.raises(error) as info:
        store.merge_tasks(ACCOUNT, [], full=False)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_migrate_needs_the_database_url() -> None:
    store = mock_store(lambda request: httpx.Response(200, json=[]))
    with pytest.raises(CoreConfigurationError, match="CORE_DATABASE_URL"):
        store.migrate()


def test_end_to_end_through_the_postgrest_standin(core_store: PostgresStore, core_dsn: str) -> None:
    portal = add_portal(core_store)
    with running_standin(core_dsn, KEY) as (base_url, app):
        store = SupabaseStore(base_url, KEY, chunk_rows=3)
        assert [a.id for a in store.list_accounts()] == [portal.id]
        people = [
            EmployeeRow(bitrix_id=str(i), email=f"u{i}@acme.io", full_name=f"O'Neil {i} 🚀") for i in range(5)
        ]
        assert store.merge_employees(portal.id, people, full=True) == MergeCounts(
            inserted=5, rows_in_table=5, live_rows=5
        )
        assert store.merge_employees(portal.id, people[:4], full=True) == MergeCounts(
            unchanged=4, removed=1, rows_in_table=5, live_rows=4
        )
        tasks = [TaskRow(bitrix_id=str(i), title=f"T{i}", responsible_bitrix_id=str(i)) for i in range(4)]
        assert store.merge_tasks(portal.id, tasks, full=True) == MergeCounts(
            inserted=4, rows_in_table=4, live_rows=4
        )
        assert store.merge_tasks(portal.id, tasks, full=True) == MergeCounts(
            unchanged=4, rows_in_table=4, live_rows=4
        )
        assert store.unresolved_task_people(portal.id) == UnresolvedPeople()
        sync_id = store.start_sync(portal.id, "tasks", "run-1")
        store.finish_sync(
            sync_id,
            status="success",
            records_fetched=4,
            counts=MergeCounts(inserted=4),
            cursor={"changed_since": "2025-01-01T00:00:00+00:00"},
        )
        assert store.get_cursor(portal.id, "tasks") == {"changed_since": "2025-01-01T00:00:00+00:00"}
        assert store.put_event(portal.id, "ONTASKUPDATE", {"id": 1}, "e1") is True
        assert store.put_event(portal.id, "ONTASKUPDATE", {"id": 1}, "e1") is False
        (event,) = store.pending_events()
        assert store.mark_events_processed([event.id]) == 1
        with pytest.raises(AccountNotFoundError):
            store.get_account(ACCOUNT)
        # both backends ran the same SQL: the Postgres backend sees the same rows
        assert core_store.count_active_employees(portal.id) == 4
        assert {c["function"] for c in app.state.calls} >= {
            "merge_employees",
            "remove_missing",
            "merge_tasks",
        }
        store.close()
    with psycopg.connect(core_dsn) as conn:
        assert conn.execute("select count(*) from core.tasks").fetchone()[0] == 4


def test_standin_reports_unexposed_schema(core_dsn: str) -> None:
    with running_standin(core_dsn, KEY, exposed_schemas=("public",)) as (base_url, _):
        store = SupabaseStore(base_url, KEY)
        with pytest.raises(CoreConfigurationError, match="does not expose schema core"):
            store.list_accounts()
