"""Relays: the events stream becomes Slack messages, each kept true as its operation moves.

``operations`` posts one message per operation and updates it in place (``message_book``
remembers which, in Redis); ``runbook_board`` keeps a run's checklist board and its step
cards; ``restore_cards`` keeps approval cards true after the fact. Each reads the stream
through its own consumer group (``stream_group``), so bot replicas share the work.
"""
