"""Thin RQ entry points: each loads config, calls the engine and reports through events.

Enqueue them by dotted path (see workers.queues); their only argument is an
OperationRequest as JSON.
"""
