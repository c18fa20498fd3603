"""Full syncs under every fault kind the sandbox can inject (the scenarios of ``python -m
bench.chaos``, on a small portal): each ends in exact parity with the portal or in a failed sync
with one sentence that left Core as it was. Never in a lost or changed row."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import KINDS, Pace, scenarios
from bitrix24_assets.core.embedded import EmbeddedPostgres
from bitrix24_assets.sandbox import SandboxHandle


@pytest.fixture
def baseline_server(core_server: EmbeddedPostgres) -> EmbeddedPostgres:
    """The session's embedded server, with a ``baseline`` database the scenarios copy."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(core_server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists baseline with (force)"))
        admin.execute(sql.SQL("create database baseline template core_template"))
    return core_server


@pytest.mark.timeout(600)
def test_every_fault_kind_ends_in_parity_or_one_sentence_never_in_lost_rows(
    sandbox_factory, baseline_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    portal: SandboxHandle = sandbox_factory(users=30, tasks=400, events=80, seed=13, time_scale=1.0)
    # answers "slow" for longer than the client's timeout; backoff waits at a hundredth of real time
    pace = Pace(timeout=0.5, time_scale=0.01, slow_seconds=1.0)
    outcomes = list(scenarios(portal, baseline_server, tmp_path, KINDS, (0.2,), pace))
    assert [o.kind for o in outcomes] == list(KINDS)
    for o in outcomes:
        assert not o.lost and not o.changed, (o.kind, o.parity, o.message)
        if not o.synced:  # a failure is one sentence naming the account
            assert o.message.startswith("Bitrix24 account 'Chaos portal'") and o.message.count("\n") == 0
    assert sum(o.synced for o in outcomes) >= len(KINDS) // 2  # retries carry most runs through
    assert sum(o.retries for o in outcomes) >= len(KINDS)  # the faults were really there
