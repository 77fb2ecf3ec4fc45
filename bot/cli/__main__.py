"""``python -m bot.cli``: the same as the ``kosmos-backup`` script (used to start children)."""

from bot.cli import main

main()
