"""Kubernetes resources through Velero: Backup, Restore and Schedule objects, and scale steps."""
