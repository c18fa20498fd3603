"""A popular third-party client, used unchanged, enumerates the sandbox (issue 2 "Done when").

fast_bitrix24 (leshchenko1979/fast_bitrix24) is given the plain ``http://127.0.0.1`` webhook URL;
it accepts http URLs as they are, POSTs JSON, and its ``get_all`` reads the first page, then
fetches the remaining ``start`` offsets in ``batch`` calls (fast_bitrix24's own strategy).
"""

from __future__ import annotations

import pytest

fast_bitrix24 = pytest.importorskip("fast_bitrix24")


def test_fast_bitrix24_get_all_returns_exactly_the_seeded_counts(sandbox):
    bitrix = fast_bitrix24.Bitrix(sandbox.webhook_url, verbose=False)
    users = bitrix.get_all("user.get")
    tasks = bitrix.get_all("tasks.task.list", {"select": ["ID", "TITLE"]})
    assert len(users) == sandbox.state.seeded_counts["users"]
    assert sorted(int(u["ID"]) for u in users) == sandbox.state.users.ids
    assert len(tasks) == sandbox.state.seeded_counts["tasks"]
    assert sorted(int(t["id"]) for t in tasks) == sandbox.state.tasks.ids


def test_fast_bitrix24_on_the_cloud_profile(sandbox_factory):
    portal = sandbox_factory(profile="cloud", time_scale=1e-4, users=120, tasks=700, events=0)
    bitrix = fast_bitrix24.Bitrix(portal.webhook_url, verbose=False)
    tasks = bitrix.get_all("tasks.task.list", {"select": ["ID"]})
    assert len(tasks) == 700
    assert len(bitrix.get_all("user.get")) == 120
