"""MkDocs hook: the settings page is written from the configuration code at build time
(``dataflows.config.settings_of``, the same source as ``python -m dataflows --help``), so
it cannot drift from what the jobs read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataflows.config import JOB_SETTINGS, SECRET_SETTINGS, settings_of

MARKER = "<!-- settings: generated from dataflows/config.py -->"


def settings_tables() -> str:
    """A table for the settings every job reads, then one for each job's own."""
    shared: set[str] | None = None
    parts = []
    for job in JOB_SETTINGS:
        rows = settings_of(job)
        if shared is None:
            shared = {name for name, _, _ in rows}
            parts.append("## Every job\n")
        else:
            rows = [row for row in rows if row[0] not in shared]
            if not rows:
                continue
            parts.append(f"## `{job}` only\n")
        parts.append("| Setting | Default | What it does |\n|---|---|---|")
        for name, default, meaning in rows:
            secret = " Never logged: the run record says only whether it was set." * (
                name in SECRET_SETTINGS
            )
            text = (meaning + "." + secret).replace("|", "\\|")
            parts.append(f"| `{name}` | `{default}` | {text} |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == "settings.md" and MARKER not in markdown:
        raise PluginError(f"docs/settings.md lost its marker {MARKER!r}: the tables go there")
    return markdown.replace(MARKER, settings_tables())
