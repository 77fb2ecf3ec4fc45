"""The console: a terminal chat over the same grammar and handlers, rendered with rich.

People type the Slack commands (``/backup status``) and see the same answers and the same
live progress (read from the event stream). A runbook run started here (or looked at with
``/dr status``) is followed as a feed of new lines (``bot.replies.runbook_feed``): steps as
they move, failures with their hints, manual steps with the commands and the typed answers
(``/dr done <step>`` …), the approval card of a gated step, and the report's storage path.

``/as <user>`` switches between the users the roles name, so two-person flows can be tried
on one machine; with no roles configured the console is a single local user holding every
role. The console chat is the local operator's own terminal, running with the deployment's
own Redis and approval key: ``/as`` is trusted here, whatever
``approvals.trust_local_console`` says (that flag is about the CLI, where each person has
their own KOSMOS_USER_TOKEN). Where two real people must approve, use Slack or the CLI.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import structlog
from rich.console import Console
from rich.markup import escape

from bot.console.log import default_log_file, logs_to_file
from bot.console.terminal import backups_table, status_notes, status_table
from bot.grammar.command import chat_command
from bot.handlers import Caller, Desk, dispatch
from bot.replies import Reply
from bot.replies.backup import AcceptedReply, HelpReply, ListReply, StatusReply
from bot.replies.progress import OperationView, Stage, chat_hint, fold, stage_text, title
from bot.replies.restore import AuditReply, CardReply, DecisionReply, card_facts, plain
from bot.replies.runbook import DrReply, drill_line
from bot.replies.runbook_feed import APPROVAL_REQUESTED, Line, event_lines, request_lines
from bot.roles import Authorizer, SelfNamedGroups
from workers import components, queues
from workers.context import Context
from workers.core.errors import KosmosError
from workers.core.events import CONSOLE, ChatContext, Event, EventType
from workers.core.ids import new_operation_id
from workers.core.operations import OperationKind

LOCAL_USER = "local"
UPDATE_SECONDS = 1.5
CONSOLE_HELP = [
    ("/as <user>", "act as another user named in slack.roles (/as alone lists them)"),
    ("/whoami", "who you are and which roles you hold"),
    ("/wait [seconds]", "wait until your operations end"),
    ("/quit", "leave (Ctrl-D too)"),
]


class ConsoleChat:
    """One terminal session: reads command lines, prints answers and live progress."""

    def __init__(
        self,
        ctx: Context,
        console: Console,
        user: str | None = None,
        log_file: Path | None = None,
    ) -> None:
        roles = ctx.settings.slack.roles
        self.ctx = ctx
        self.console = console
        self.log_file = log_file or default_log_file()
        self.authorizer = Authorizer(roles, SelfNamedGroups())
        self.authorizer.open_access = not self.authorizer.users()
        self.desk = Desk(ctx, self.authorizer)
        self.user = user or self._default_user()
        self.views: dict[str, OperationView] = {}
        self.shown: dict[str, tuple[float, str]] = {}
        self.mine: set[str] = set()
        self.runs: set[str] = set()
        self._after = "$"
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _default_user(self) -> str:
        if self.authorizer.open_access:
            return LOCAL_USER
        roles = self.ctx.settings.slack.roles
        return (roles.operators or roles.incident_commanders or self.authorizer.users())[0]

    # -- the session ---------------------------------------------------------------------------

    def run(self, lines: Iterable[str] | None = None) -> None:
        """Greet, follow events in the background, and answer lines until /quit or EOF."""
        with logs_to_file(self.log_file):
            self._after = queues.last_event_id(self.ctx.redis, self.ctx.settings)
            watcher = threading.Thread(target=self._follow, name="kb-console-events", daemon=True)
            watcher.start()
            self._greet()
            try:
                for line in lines if lines is not None else _prompted(sys.stdin, self.console):
                    if not self.handle(line):
                        break
            except KeyboardInterrupt:
                pass
            finally:
                self._stop.set()
                watcher.join(timeout=2)

    def handle(self, line: str) -> bool:
        """Answer one line; False when the session should end."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        word, _, rest = text.partition(" ")
        word = word.lower()
        if word in ("/quit", "/exit", "quit", "exit"):
            return False
        if word == "/as":
            self._switch(rest.strip())
        elif word == "/whoami":
            self._whoami()
        elif word == "/wait":
            self._wait(float(rest) if rest.strip().replace(".", "", 1).isdigit() else 600.0)
        elif word in ("/help", "help"):
            self._print_help()
        else:
            self._command(text if text.startswith("/") else "/" + text)
        return True

    def _command(self, text: str) -> None:
        command, _, rest = text.partition(" ")
        caller = Caller(self.user, ChatContext(source=CONSOLE, user=self.user))
        try:
            reply = dispatch(self.desk, caller, command, rest)
        except KosmosError as exc:
            self._print_error(exc)
            return
        except Exception:
            op_id = new_operation_id(self.ctx.clock())
            structlog.get_logger().exception("internal error", operation=op_id)
            self.console.print(
                f"[red]internal error, operation {op_id}[/] "
                f"[dim](details in {escape(str(self.log_file))})[/]"
            )
            return
        if isinstance(reply, AcceptedReply):
            with self._lock:
                self.mine.add(reply.op_id)
        self.render(reply)

    # -- rendering -----------------------------------------------------------------------------

    def render(self, reply: Reply) -> None:
        """Print a handler's reply."""
        if isinstance(reply, StatusReply):
            self.console.print(status_table(self.ctx.settings, reply.rows, reply.now))
            for note in status_notes(reply.rows):
                self.console.print(note)
            for row in reply.rows:
                for fact in components.status_facts(row, reply.now):
                    self.console.print(f"  {escape(row.name)} {escape(fact.long)}")
            if reply.drill:
                self.console.print(f"  {escape(drill_line(reply.drill))}")
        elif isinstance(reply, ListReply):
            self.console.print(backups_table(reply.component, reply.backups, reply.now))
            if reply.total > len(reply.backups):
                self.console.print(f"  (newest {len(reply.backups)} of {reply.total})")
        elif isinstance(reply, AcceptedReply):
            again = " (already accepted)" if reply.repeated else ""
            self.console.print(
                f"[cyan]⏳ {escape(reply.description)} queued as {reply.op_id}{again}[/]"
            )
        elif isinstance(reply, HelpReply):
            self._print_help(reply)
        elif isinstance(reply, CardReply | DecisionReply | AuditReply | DrReply):
            self._remember(reply)
            # One print for the whole answer: live lines from the events never land inside it.
            self.console.print("\n".join(escape(line) for line in reply.lines()))

    def _remember(self, reply: CardReply | DecisionReply | AuditReply | DrReply) -> None:
        """Follow what an answer is about: a run's steps, an approved request's restore."""
        with self._lock:
            if isinstance(reply, DrReply) and reply.run is not None:
                self.runs.add(reply.run.run_id)
            if isinstance(reply, DecisionReply) and reply.request.op_id:
                self.mine.add(reply.request.op_id)

    def _print_help(self, reply: HelpReply | None = None) -> None:
        if reply is None:
            from bot.handlers.backup import help_reply

            reply = help_reply(None)
        lines = list(reply.lines)
        if reply.group == "backup" and not reply.topic:
            lines += CONSOLE_HELP  # the console's own commands: /as, /whoami, /wait, /quit
        for usage, summary in lines:
            self.console.print(f"  [bold]{escape(usage)}[/]  {escape(summary)}")

    def _print_error(self, error: KosmosError) -> None:
        self.console.print(f"[red]{escape(error.message)}[/]")
        for line in error.hint_for(chat_command).splitlines():
            self.console.print(f"  [dim]{escape(line)}[/]")

    def _greet(self) -> None:
        mode = "every role (no roles configured)" if self.authorizer.open_access else None
        held = mode or ", ".join(sorted(self.authorizer.roles_of(self.user))) or "no role"
        self.console.print(
            f"[bold]kosmos-backup console[/] — you are [bold]{escape(self.user)}[/] ({held}). "
            "Type /backup help, /as <user>, /quit."
        )
        self.console.print(f"[dim]logs: {escape(str(self.log_file))}[/]")

    def _whoami(self) -> None:
        roles = ", ".join(sorted(self.authorizer.roles_of(self.user))) or "no role"
        self.console.print(f"you are {escape(self.user)}: {roles}")

    def _switch(self, user: str) -> None:
        users = self.authorizer.users()
        if not user:
            shown = ", ".join(users) or f"{LOCAL_USER} (no roles configured)"
            self.console.print(f"users: {escape(shown)}")
            return
        if user not in users:
            self.console.print(
                f"[red]{escape(user)} is not named in slack.roles[/]  "
                f"[dim]users: {escape(', '.join(users) or LOCAL_USER)}[/]"
            )
            return
        self.user = user
        self._whoami()

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                pending = [o for o in self.mine if not self._ended(o)]
            if not pending:
                return
            time.sleep(0.1)
        self.console.print(f"[yellow]still running after {seconds:.0f}s[/]")

    def _ended(self, op_id: str) -> bool:
        view = self.views.get(op_id)
        shown = self.shown.get(op_id)
        if view is None or shown is None:
            return False
        return view.ended and shown[1] == self._line(view)

    def _line(self, view: OperationView) -> str:
        rto = self.ctx.settings.objectives.rto.total_seconds()
        return f"{view.op_id} {title(view)} — {stage_text(view, rto)}"

    # -- live updates --------------------------------------------------------------------------

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                found = queues.read_events(
                    self.ctx.redis, self.ctx.settings, after=self._after, block_ms=500
                )
            except Exception as exc:  # noqa: BLE001 - keep the chat usable while Redis is away
                self.console.print(f"[yellow]event stream unavailable: {escape(str(exc))}[/]")
                self._stop.wait(2.0)
                continue
            for entry_id, event in found:
                self._after = entry_id
                if event.terminal and event.component:
                    # A finished operation changed the catalog: the next list must show it.
                    self.desk.catalog.forget(event.component)
                self._show(event)
            self._flush()

    def _show(self, event: Any) -> None:
        if event.operation == OperationKind.DR_STEP and event.op_id.startswith("dr-"):
            self._show_run(event)
            return
        if event.type in (EventType.ALERT, EventType.RECOVERED):
            colour = "red" if event.type == EventType.ALERT else "green"
            self.console.print(
                f"[{colour}]{event.type.value}: {escape(event.component or '')} "
                f"{escape(event.message or '')}[/]"
            )
            return
        if event.chat.source != "console" and event.op_id not in self.mine:
            return
        with self._lock:
            self.views[event.op_id] = fold(self.views.get(event.op_id), event)
        if event.type == EventType.NOTE and event.note:
            self.console.print(f"  [dim]{event.op_id}: {escape(event.note)}[/]")

    def _show_run(self, event: Event) -> None:
        """A run's event as new lines, for runs started in a console or looked at here."""
        from workers.runbooks import flow as runbook_flow

        try:
            run = runbook_flow.runs(self.ctx).load(event.op_id)
        except KosmosError:
            return
        with self._lock:
            if event.op_id not in self.runs and run.chat.source != CONSOLE:
                return
            self.runs.add(run.run_id)
        lines = event_lines(run, event, self.ctx.clock())
        what = str(event.summary.get("what") or "")
        step = run.steps.get(str(event.summary.get("step")))
        if what.startswith(APPROVAL_REQUESTED) and step and step.approval_id:
            lines += self._request_lines(step.approval_id)
        if lines:
            shown = [f"[{s}]{escape(text)}[/]" if s else escape(text) for s, text in lines]
            self.console.print("\n".join(shown))

    def _request_lines(self, request_id: str) -> list[Line]:
        from workers.restore.requests import store_of

        request = store_of(self.ctx).find(request_id)
        if request is None:
            return []
        rto = self.ctx.settings.objectives.rto.total_seconds()
        return request_lines(request_id, plain(card_facts(request, self.ctx.clock(), rto)))

    def _flush(self) -> None:
        now = time.monotonic()
        with self._lock:
            views = list(self.views.items())
        for op_id, view in views:
            line = self._line(view)
            last = self.shown.get(op_id)
            if last is not None and (
                last[1] == line or (not view.ended and now - last[0] < UPDATE_SECONDS)
            ):
                continue
            colour = {Stage.DONE: "green", Stage.FAILED: "red"}.get(view.stage, "cyan")
            self.console.print(f"[{colour}]{escape(line)}[/]")
            hint = chat_hint(view)
            if view.stage == Stage.FAILED and hint:
                self.console.print(f"  [dim]{escape(hint)}[/]")
            with self._lock:
                self.shown[op_id] = (now, line)


def _prompted(stream: IO[str], console: Console) -> Iterable[str]:
    """Lines from ``stream``, with a prompt when it is a terminal."""
    interactive = stream.isatty()
    while True:
        if interactive:
            console.print("[bold]kosmos>[/] ", end="")
        line = stream.readline()
        if not line:
            return
        yield line
