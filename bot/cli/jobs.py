"""Job commands: worker, scheduler, ops; and ``submit_and_render`` for enqueueing commands."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bot.cli.follow import follow_operation
from bot.cli.options import context_from, json_option
from bot.console.terminal import console
from bot.formats import when
from workers import queues
from workers.config_loader import CONFIG_ENV
from workers.context import Context
from workers.core.errors import UsageError
from workers.core.events import TERMINAL, Event, EventType
from workers.core.operations import OperationRequest


def submit_and_render(
    ctx: Context, request: OperationRequest, wait: bool, as_json: bool = False
) -> str:
    """Enqueue ``request`` and print its id at once; with ``wait``, follow it to its end.

    ``as_json`` prints one JSON line for each: the accepted operation, then its outcome.
    Exits with status 1 (click.exceptions.Exit) when the waited-for operation failed.
    """
    client = ctx.redis
    start = queues.last_event_id(client, ctx.settings)  # before submitting: miss nothing
    op_id = queues.submit(client, ctx.settings, request)
    if as_json:
        queue = queues.queue_for(ctx.settings, request)
        _echo_line({**_identity(request), "state": "queued", "queue": queue})
    else:
        click.echo(op_id)
    if wait:
        follow_to_end(ctx, request, start, as_json)
    return op_id


def follow_to_end(ctx: Context, request: OperationRequest, after: str, as_json: bool) -> None:
    """Follow an enqueued operation from stream id ``after``; exit 1 unless it finished.

    Progress goes to stderr for people; ``as_json`` prints only the outcome, on stdout.
    """
    op_id = request.op_id
    out = Console(stderr=True, quiet=as_json)
    try:
        end = follow_operation(ctx.redis, ctx.settings, op_id, after, out)
    except KeyboardInterrupt:
        click.echo(f"still running; follow it with: kosmos-backup ops {op_id} --follow", err=True)
        raise click.exceptions.Exit(130) from None
    if as_json:
        _echo_line(outcome_document(request, end))
    if end is None or end.type == EventType.FAILED:
        raise click.exceptions.Exit(1)


def outcome_document(request: OperationRequest, end: Event | None) -> dict[str, Any]:
    """An operation's end as JSON data: its state, and its summary or its error."""
    doc: dict[str, Any] = {**_identity(request), "state": end.type.value if end else "unknown"}
    if end is not None and end.type == EventType.FINISHED:
        doc["summary"] = end.summary
    elif end is not None:
        doc["error"] = {"class": end.error_class, "message": end.message, "hint": end.hint}
    return doc


def _identity(request: OperationRequest) -> dict[str, Any]:
    return {"op_id": request.op_id, "kind": request.kind.value, "component": request.component}


def _echo_line(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, default=str))


@click.command()
@click.option(
    "--queues",
    "-q",
    "queue_names",
    multiple=True,
    help="Queues to work (repeat or comma-separate). Default: kosmos-default.",
)
@click.option("--burst", is_flag=True, help="Quit once the queues are empty.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), help="Serve /metrics here.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True)
@click.option("--name", help="Worker name (default: RQ's host.pid).")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def worker(
    ctx: click.Context,
    queue_names: tuple[str, ...],
    burst: bool,
    metrics_port: int | None,
    metrics_addr: str,
    name: str | None,
    log_level: str,
) -> None:
    """Run a worker on the given queues (structured logs; JSON when not on a terminal)."""
    from workers.worker import configure_logging, run_worker

    work = context_from(ctx)
    names = [part.strip() for item in queue_names for part in item.split(",") if part.strip()]
    if queue_names and not names:
        # An empty --queues (an unset variable in a unit file) must not quietly mean the default.
        raise UsageError(
            "--queues names no queue",
            hint=f"name one or more of: {', '.join(queues.all_queues(work.settings))}",
        )
    _export_config(ctx)
    configure_logging(log_level)
    run_worker(
        work.settings,
        names or [queues.QUEUE_DEFAULT],
        burst=burst,
        metrics_port=metrics_port,
        metrics_addr=metrics_addr,
        name=name,
    )


@click.command()
@click.option("--once", is_flag=True, help="Run one tick (if no other scheduler leads) and exit.")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def scheduler(ctx: click.Context, once: bool, log_level: str) -> None:
    """Enqueue due backups, the RPO monitor, prune and sweep; one leader among many."""
    from workers.scheduler import Scheduler
    from workers.worker import configure_logging

    configure_logging(log_level)
    planner = Scheduler(context_from(ctx))
    if once:
        report = planner.once()
        if report is None:
            click.echo(f"standby: {planner.state.holder('scheduler:leader')} leads")
            return
        click.echo(json.dumps(report.__dict__, indent=2))
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    planner.run(stop)


@click.command()
@click.argument("op_id", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--follow", "-f", is_flag=True, help="Keep showing the operation until it ends.")
@json_option
@click.pass_context
def ops(ctx: click.Context, op_id: str | None, limit: int, follow: bool, as_json: bool) -> None:
    """Recent operations and their state; with an ID, that operation's events."""
    work = context_from(ctx)
    client, settings = work.redis, work.settings
    if op_id is None:
        records = queues.recent_operations(client, settings, limit)
        if as_json:
            click.echo(json.dumps({"operations": records}, indent=2, default=str))
        else:
            console().print(operations_table(records, work.clock()))
        return
    record = queues.operation(client, settings, op_id)
    if record is None:
        from workers.core.errors import NotFoundError

        raise NotFoundError(f"no operation {op_id}", hint="see: kosmos-backup ops")
    start = str(record.get("last_event_id") or queues.last_event_id(client, settings))
    events = queues.operation_events(client, settings, op_id)
    if as_json:
        doc = {"operation": record, "events": [e.model_dump(mode="json") for e in events]}
        click.echo(json.dumps(doc, indent=2, default=str))
    else:
        _print_history(record, events)
    if follow and record.get("state") not in {t.value for t in TERMINAL}:
        end = follow_operation(client, settings, op_id, start, Console(stderr=True))
        if end is None or end.type == EventType.FAILED:
            raise click.exceptions.Exit(1)


def operations_table(records: list[dict[str, Any]], now: datetime) -> Table:
    """Recent operations, newest first."""
    table = Table(title=f"{len(records)} recent operations", title_justify="left")
    for column in ("operation", "kind", "component", "state", "queued", "by", "last"):
        table.add_column(column)
    for record in records:
        last = record.get("last_event") or {}
        text = last.get("message") or last.get("note") or last.get("phase") or ""
        created = record.get("created_at")
        table.add_row(
            record["op_id"],
            record.get("kind", ""),
            record.get("component") or "–",
            _state_mark(record.get("state", "")),
            when(datetime.fromisoformat(created), now) if created else "–",
            (record.get("request") or {}).get("requested_by") or "–",
            str(text)[:60],
        )
    return table


def _state_mark(state: str) -> str:
    colors = {"finished": "green", "failed": "red", "running": "cyan", "queued": "yellow"}
    return f"[{colors.get(state, 'white')}]{state}[/]"


def _print_history(record: dict[str, Any], events: list[Event]) -> None:
    out = console()
    request = record.get("request") or {}
    out.print(
        f"[bold]{record['op_id']}[/] {record.get('kind')} {record.get('component') or ''} "
        f"{_state_mark(record.get('state', ''))} on {record.get('queue')}"
        + (f", worker {record['worker']}" if record.get("worker") else "")
        + (f", requested by {request['requested_by']}" if request.get("requested_by") else "")
    )
    for event in events:
        detail = event.message or event.note or ""
        if event.type == EventType.FINISHED and event.summary:
            detail = json.dumps(event.summary, default=str)[:200]
        out.print(f"  {event.at:%H:%M:%S} {event.type.value:<9} {detail}", markup=False)
        if event.hint and event.type == EventType.FAILED:
            out.print(f"  {'':<18}hint: {event.hint}", markup=False)


def _export_config(ctx: click.Context) -> None:
    # Jobs run in forked work horses that load settings themselves: they must read the
    # same file this worker was started with, even when it came from --config.
    root = ctx.find_root()
    path = root.obj.get("config_path") if isinstance(root.obj, dict) else None
    if path:
        os.environ[CONFIG_ENV] = os.path.abspath(path)


commands = [worker, scheduler, ops]
