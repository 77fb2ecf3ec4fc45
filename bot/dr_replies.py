"""What ``/dr`` answers, before rendering: a note and, usually, the run's board."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workers.core.runbook_run import RunState


@dataclass(frozen=True)
class DrReply:
    """A note for the person who typed the command, and the run it is about."""

    note: str
    run: RunState | None
    now: datetime

    def lines(self) -> list[str]:
        """Plain text for the console and the CLI."""
        from bot.dr_blocks import clock_line, step_line

        lines = [self.note]
        if self.run is not None:
            run = self.run
            lines.append(f"{run.runbook.title} · run {run.run_id} · {run.status.value}")
            lines += [step_line(run, step_id, self.now) for step_id in run.runbook.ids]
            lines.append(clock_line(run, self.now))
            if run.failure:
                lines.append(f"failure: {run.failure}")
        return lines
