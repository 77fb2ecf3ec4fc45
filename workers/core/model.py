"""The base of every pydantic model here: validators are built on first use, not at import.

A command uses a handful of the project's models; building all of them when their modules
are imported cost a quarter of every CLI process's start-up (``bench/cli_startup.py``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic model whose schema and validator are built when it is first used."""

    model_config = ConfigDict(defer_build=True)
