"""Commands from the platform to Bitrix24 as Dagster runs: a sensor turns pending outbox rows into one
``bitrix24_commands_job`` run per account; the run carries them out (``pipeline/commands.py``).

An op job, not assets: a command is an action in Bitrix24, not data the platform reads, and the
asset graph shows nothing that is not data. The job is partitioned by the same account partitions
as the syncs, so every commands run carries ``dagster/partition = <account id>`` and the run
queue's per-portal limit (``tag_concurrency_limits`` in ``dagster_home/dagster.yaml``) runs it
after or before that portal's syncs, never beside them: the portal's rate limit and operating
budget are spent by one run at a time, and within the run one client serves the portal.

- ``bitrix24_commands_sensor`` (running, 15 s): one run per account with pending commands whose
  partition exists; ``run_key`` = ``commands:<account>:<highest pending id>`` (plus the most
  attempts among them when commands went back to pending after a rate limit), so a tick never
  requests the same commands twice and a new command always gets a run; a queue still waiting 15
  minutes later (its run failed before claiming: missing credentials, Core down) gets one more run
  per 15 minutes. An account with a run
  queued or in flight (a sync, a fleet batch, or commands) gets its run on a later tick: a queued
  commands run claims whatever is pending when it starts, and fleet batch runs hold no per-portal
  tag, so this is what keeps a commands run from overlapping a fleet run of its portal.
- ``bitrix24_commands_job``: output metadata ``sent`` / ``failed`` / ``unknown`` / ``released`` and
  the command ids of each, plus run tags with the counts (the Runs page). A command whose outcome
  is unknown fails the run with one sentence naming the account, the ids and how to resolve them.
"""

import dagster as dg

from bitrix24_assets.core import CoreStore
from bitrix24_assets.core.commands import CommandOutbox, IntegrationCommand, PendingAccount
from bitrix24_assets.defs.fleet import busy_accounts
from bitrix24_assets.defs.partitions import ACCOUNTS_PARTITIONS_NAME, integration_accounts
from bitrix24_assets.defs.resources import Bitrix24Resource, CoreResource
from bitrix24_assets.defs.tags import TRIGGER_TAG, tags_by_account
from bitrix24_assets.pipeline.commands import execute_commands

__all__ = [
    "COMMANDS_JOB",
    "bitrix24_commands_job",
    "bitrix24_commands_sensor",
    "build_commands_sensor",
    "run_key",
]

COMMANDS_JOB = "bitrix24_commands_job"
PENDING_TAG = "bitrix24/pending_commands"
TICK_SECONDS = 15
RETRY_SECONDS = 900


@dg.op(
    name="bitrix24_send_commands",
    out=dg.Out(dg.Nothing),
    description="Carry out the account's pending commands in Bitrix24, each at most once, and write "
    "back the Bitrix24 id, one sentence, or 'unknown'.",
)
def send_commands(context: dg.OpExecutionContext, core: CoreResource, bitrix24: Bitrix24Resource) -> None:
    account_id = context.partition_key
    store = core.get_store()
    account = store.get_account(account_id)
    name = account.name or account_id
    try:
        client = bitrix24.run_client(account, store)
    except Exception as exc:  # no credentials, a malformed webhook URL: nothing was claimed or sent
        raise dg.Failure(
            description=f"Bitrix24 account '{name}': {exc}; its commands stay pending and are tried again "
            "once that is fixed.",
            allow_retries=False,
        ) from None

    def progress(command: IntegrationCommand, status: str) -> None:
        context.log.debug(f"Account '{name}': command {command.id} {status}.")

    outcome = execute_commands(
        CommandOutbox(store),
        client,
        account_id,
        run_id=context.run_id,
        account_name=name,
        on_command=progress,
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        **outcome.counts,
        **{f"{key}_ids": dg.MetadataValue.json(getattr(outcome, key)) for key in outcome.counts},
        "account": name,
    }
    context.instance.add_run_tags(
        context.run_id, {f"bitrix24/commands_{key}": str(value) for key, value in outcome.counts.items()}
    )
    summary = ", ".join(f"{v} {k}" for k, v in outcome.counts.items())
    context.log.info(f"Account '{name}': commands {summary}.")
    if outcome.stopped:
        context.log.warning(outcome.stopped)
    if outcome.unknown:
        ids = ", ".join(str(i) for i in outcome.unknown)
        raise dg.Failure(
            description=f"Bitrix24 account '{name}': the outcome of commands {ids} is unknown (the "
            "connection dropped after sending), so they were not repeated; check Bitrix24 and resolve "
            "each with `bitrix24-core commands resolve <id> --as sent|failed`.",
            metadata=metadata,
            allow_retries=False,
        )
    context.add_output_metadata(metadata)


@dg.job(
    name=COMMANDS_JOB,
    partitions_def=integration_accounts,
    executor_def=dg.in_process_executor,
    description="Carries out one account's pending commands (tasks, calendar events, notifications) "
    "from core.integration_commands; requested by bitrix24_commands_sensor.",
)
def bitrix24_commands_job() -> None:
    send_commands()


def run_key(pending: PendingAccount) -> str:
    """Unique per set of pending commands: a new command raises the highest id, commands put back to
    pending after a rate limit raise the attempts. A queue still waiting after ``RETRY_SECONDS`` (its
    run failed before it claimed anything: missing credentials, Core down) gets one more run per
    ``RETRY_SECONDS``, never one per tick."""
    key = f"commands:{pending.account_id}:{pending.max_id}"
    if pending.max_attempts:
        key += f":{pending.max_attempts}"
    if pending.waiting_seconds >= RETRY_SECONDS:
        key += f":retry{pending.waiting_seconds // RETRY_SECONDS}"
    return key


def build_commands_sensor(
    *, name: str = "bitrix24_commands_sensor", minimum_interval_seconds: int = TICK_SECONDS
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        job=bitrix24_commands_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns pending commands in core.integration_commands into one bitrix24_commands_job "
        "run per account.",
    )
    def commands_sensor(context: dg.SensorEvaluationContext, core: CoreResource) -> dg.SensorResult:
        with core.store() as store:
            return _evaluate(context, store)

    return commands_sensor


def _evaluate(context: dg.SensorEvaluationContext, store: CoreStore) -> dg.SensorResult:
    pending = CommandOutbox(store).pending_accounts()
    if not pending:
        return dg.SensorResult(skip_reason="No pending commands.")
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME))
    waiting = [p for p in pending if p.account_id not in known]
    busy = busy_accounts(context.instance)
    due = [p for p in pending if p.account_id in known and p.account_id not in busy]
    if waiting:
        context.log.info(
            f"{len(waiting)} accounts have pending commands but no partition yet (not onboarded or "
            "disabled); their commands wait."
        )
    if not due:
        return dg.SensorResult(
            skip_reason=f"{len(pending)} accounts with pending commands, none without a run in flight now."
        )
    names = tags_by_account(store)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=p.account_id,
                run_key=run_key(p),
                tags={TRIGGER_TAG: "commands", PENDING_TAG: str(p.pending), **names.get(p.account_id, {})},
            )
            for p in due
        ]
    )


bitrix24_commands_sensor = build_commands_sensor()
