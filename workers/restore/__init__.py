"""Restores: the plan and its checks, two-person requests and break-glass, the job's guard."""
