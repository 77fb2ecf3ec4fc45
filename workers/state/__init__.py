"""Redis state every kind shares: jobs and events, approvals, runbook runs, the audit log."""
