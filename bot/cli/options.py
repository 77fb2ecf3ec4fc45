"""Shared CLI plumbing: building the context from the --config option."""

from __future__ import annotations

import click

from workers.config_loader import load_settings
from workers.context import Context


def context_from(click_ctx: click.Context) -> Context:
    """The work context for this invocation (settings loaded once per process).

    The command that asked is remembered beside it, so that an error reaching ``main``
    (Redis unreachable) can say what applies to that command.
    """
    root = click_ctx.find_root()
    obj = root.obj if isinstance(root.obj, dict) else {}
    if "context" not in obj:
        obj["context"] = Context(load_settings(obj.get("config_path")))
        root.obj = obj
    obj["command"] = click_ctx.command
    return obj["context"]  # type: ignore[no-any-return]


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
