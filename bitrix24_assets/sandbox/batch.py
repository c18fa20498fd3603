"""``batch`` (docs/bitrix24-rest-api.md §3): up to 50 sub-commands run one after another in one worker slot.

* ``cmd`` is a map (or list) of ``key -> "method?query"``; the query is read with ``parse_str``;
* ``$result[key][path]`` (and ``$next``, ``$total``, ``$time``, ``$error``) references are replaced
  by earlier results; descent stops at the last resolvable level; a whole-value reference
  substitutes the raw value (arrays included), an embedded one only scalars;
* commands past the 50th are not run and get ``ERROR_BATCH_LENGTH_EXCEEDED`` in ``result_error``;
  a nested ``batch`` gets ``ERROR_BATCH_METHOD_NOT_ALLOWED``; ``halt`` stops at the first error;
* the response is always HTTP 200 with ``result``/``result_error``/``result_total``/``result_next``/
  ``result_time`` serialized as PHP arrays (``[]`` when empty, lists for keys 0..n-1);
* billing: ``docs`` bills each sub-command to its own method (and checks its budget before it
  runs); ``batch`` bills the whole batch to method ``batch`` (what the JS-SDK maintainers measured).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import RestError
from .methods import MethodResult
from .phpquery import parse_str, php_map, truthy, upper_keys

if TYPE_CHECKING:
    from .methods import CallContext
    from .portal import CallOutcome, Portal

MAX_COMMANDS = 50
_REF = re.compile(r"\$(result|next|total|time|error)((?:\[[^\]]*\])+)", re.IGNORECASE)
_SEGMENT = re.compile(r"\[([^\]]*)\]")
_MISSING = object()


def _lookup(accumulators: dict[str, dict[str, Any]], match: re.Match[str]) -> Any:
    source = accumulators[match.group(1).lower()]
    segments = _SEGMENT.findall(match.group(2))
    if not segments or segments[0] not in source:
        return _MISSING
    value = source[segments[0]]
    for segment in segments[1:]:
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            break  # stop at the last resolvable level, no error
    return value


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None:
        return ""
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def substitute(value: Any, accumulators: dict[str, dict[str, Any]]) -> Any:
    """Replace ``$result[...]``-style references in a parsed parameter tree."""
    if isinstance(value, dict):
        return {str(substitute(k, accumulators)): substitute(v, accumulators) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, accumulators) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        found = _lookup(accumulators, whole)
        return value if found is _MISSING else found

    def embed(match: re.Match[str]) -> str:
        found = _lookup(accumulators, match)
        text = None if found is _MISSING else _scalar_text(found)
        return match.group(0) if text is None else text

    return _REF.sub(embed, value)


def _commands(raw: Any) -> list[tuple[str, Any]]:
    if isinstance(raw, dict):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list):
        return [(str(i), v) for i, v in enumerate(raw)]
    return []


async def run_batch(portal: Portal, ctx: CallContext, params: dict[str, Any], start: float) -> CallOutcome:
    from .portal import CallOutcome

    p = upper_keys(params)
    halt = truthy(p.get("HALT", False))
    by_batch = portal.config.batch_billing == "batch"
    if by_batch:
        portal.check_budget(ctx, "batch")
    sub_ctx = replace(ctx, in_batch=True)
    acc: dict[str, dict[str, Any]] = {"result": {}, "next": {}, "total": {}, "time": {}, "error": {}}
    total_cost = portal.costs.batch_overhead
    portal.count(portal.counters.calls, "batch")
    async with portal.workers:
        await portal.clock.sleep(portal.costs.batch_overhead)
        for index, (key, command) in enumerate(_commands(p.get("CMD"))):
            if not isinstance(command, str):
                continue  # non-string commands are skipped silently
            if index >= MAX_COMMANDS:
                acc["error"][key] = {
                    "error": "ERROR_BATCH_LENGTH_EXCEEDED",
                    "error_description": "Max batch length exceeded",
                }
                continue
            method, _, query = command.partition("?")
            sub_start = portal.clock.now()
            try:
                sub_params = substitute(parse_str(query), acc)
                spec = portal.resolve(sub_ctx, method.strip())
                if spec.name == "batch":
                    raise RestError(
                        405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                    )
                if not by_batch:
                    portal.check_budget(ctx, spec.name)
                try:
                    result, cost = portal.run_handler(sub_ctx, spec, sub_params)
                except RestError as exc:
                    cost = getattr(exc, "cost", 0.0)
                    await portal.clock.sleep(cost)
                    total_cost += cost
                    if not by_batch:
                        portal.bill(ctx, spec.name, cost)
                    raise
                await portal.clock.sleep(cost)
                total_cost += cost
                if not by_batch:
                    portal.bill(ctx, spec.name, cost)
            except RestError as exc:
                acc["error"][key] = {"error": exc.code, "error_description": exc.description}
                if halt:
                    break
                continue
            acc["result"][key] = result.result
            if result.total is not None:
                acc["total"][key] = int(result.total)
            if result.next is not None:
                acc["next"][key] = int(result.next)
            operating, reset_at = (None, None) if by_batch else portal.operating_fields(ctx, spec.name)
            acc["time"][key] = portal.time_block(
                CallOutcome(result, sub_start, portal.clock.now(), cost, operating, reset_at)
            )
    if by_batch:
        portal.bill(ctx, "batch", total_cost)
        operating, reset_at = portal.operating_fields(ctx, "batch")
        for block in acc["time"].values():
            if operating is not None:
                block["operating"] = operating
                if reset_at is not None and operating > 0:
                    block["operating_reset_at"] = reset_at
    else:
        operating, reset_at = portal.operating_fields(ctx, "batch")
    body = {
        "result": php_map(acc["result"]),
        "result_error": php_map(acc["error"]),
        "result_total": php_map(acc["total"]),
        "result_next": php_map(acc["next"]),
        "result_time": php_map(acc["time"]),
    }
    return CallOutcome(MethodResult(body), start, portal.clock.now(), total_cost, operating, reset_at)
