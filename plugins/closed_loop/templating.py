"""Jinja2 rendering of include/templates (email drafts, task texts, notices); HTML is autoescaped."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "include" / "templates"
ENV_VAR = "CLOSED_LOOP_TEMPLATES"


def templates_dir() -> Path:
    """$CLOSED_LOOP_TEMPLATES, else include/templates of this repository."""
    return Path(os.environ.get(ENV_VAR) or TEMPLATES_DIR)


@lru_cache(maxsize=8)
def environment(directory: str | None = None) -> Environment:
    """Environment over ``directory`` (default ``templates_dir()``): strict undefined, HTML autoescape."""
    return Environment(
        loader=FileSystemLoader(directory or str(templates_dir())),
        autoescape=select_autoescape(["html", "htm", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, /, **context: Any) -> str:
    """Render template ``name`` with ``context``; a missing variable raises jinja2.UndefinedError."""
    return environment().get_template(name).render(**context)
