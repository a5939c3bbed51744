"""The settings page, docs/settings.md, written from the configuration code
(``dataflows.config.settings_of``, the same source as ``python -m dataflows --help``):
``python tools/docs_settings.py`` writes it; ``tests/test_docs.py`` fails when the
committed page is not what the code reads, so it cannot drift."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "settings.md"
sys.path.insert(0, str(ROOT))

from dataflows.config import SECRET_SETTINGS, settings_by_job  # noqa: E402
from dataflows.native import OFF, OFF_MEANING  # noqa: E402

INTRO = """# Settings

Every job is configured by environment variables, read in one place
(`dataflows/config.py`) and checked at start: a wrong value stops the job with one line
that says what to set (exit status 2). This page is written from that code
(`python tools/docs_settings.py`; a test fails when it is out of date), as
`python -m dataflows --help` prints it, so it lists exactly what the jobs read.
Durations take a unit (`500ms`, `10s`, `16m`, `1h`).
"""


def settings_page() -> str:
    """The page: a table for the settings every job reads, then one for each job's own."""
    parts = [INTRO]
    for job, rows in settings_by_job():
        parts.append("## Every job\n" if job is None else f"## `{job}` only\n")
        parts.append("| Setting | Default | What it does |\n|---|---|---|")
        for name, default, meaning in rows:
            secret = " Never logged: the run record says only whether it was set." * (
                name in SECRET_SETTINGS
            )
            text = (meaning + "." + secret).replace("|", "\\|")
            parts.append(f"| `{name}` | `{default}` | {text} |")
        parts.append("")
    parts += [
        "## Read at import\n",
        "| Setting | Default | What it does |\n|---|---|---|",
        f"| `{OFF}` | `unset` | {OFF_MEANING}. |",
        "",
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(settings_page())
    print(f"wrote {PAGE.relative_to(ROOT)}")
