"""The front doors: CLI, console and (later) the Slack app."""
