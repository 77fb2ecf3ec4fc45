"""The report a finished DR drill leaves in storage, and the status line it makes."""

from __future__ import annotations

DRILL = {
    "run_id": "dr-20261204T214210Z-7f3a",
    "runbook": "dr-test",
    "finished_at": "2026-12-04T21:42:26.100000+00:00",
    "result": "done",
    "rto_seconds": 15.9,
    "rto_objective_seconds": 14400.0,
    "rto_met": True,
    "rpo_seconds": 812.0,
    "rpo_met": True,
}
DRILL_LINE = "✅ last DR drill 2026-12-04 21:42 UTC: done · measured RTO 15.9s of 4h"
