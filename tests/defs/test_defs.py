"""Snapshot of the code location's names: a rename of an asset, check, job, schedule or sensor
shows up as a diff of ``snapshots/definitions.json`` (rewrite it with ``UPDATE_SNAPSHOTS=1``).
Also: the definitions load without any env vars, and every asset carries its descriptions/kinds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from bitrix24_assets.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(d: dg.Definitions) -> dict[str, object]:
    graph = d.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": getattr(node.partitions_def, "name", None),
        }
    return {
        "assets": assets,
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in d.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(f"{s.name} {s.cron_schedule}" for s in d.schedules or []),
        "sensors": sorted(s.name for s in d.sensors or []),
        "resources": sorted((d.resources or {}).keys()),
    }


def test_definitions_match_snapshot() -> None:
    current = describe(defs())
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_definitions_load_and_every_asset_is_described() -> None:
    d = defs()
    dg.Definitions.validate_loadable(d)
    graph = d.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert node.kinds, key
