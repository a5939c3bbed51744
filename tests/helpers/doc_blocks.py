"""The README's and the docs' fenced blocks, each with the HTML comment before it (the
marker that says how the tests use it: ``not run: WHY``, ``file: NAME``, ``simulated:
VENDORS``, ``printed by: JOB SETTINGS``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dataflows.config import settings_by_job
from tests.helpers.oracle import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    language: str
    code: str
    marker: str | None  # the comment before the block, without <!-- -->

    @property
    def vendors(self) -> list[str]:
        """The vendors the simulator plays for it: <!-- simulated: dt, obelisk -->."""
        kind, _, detail = (self.marker or "").partition(": ")
        return detail.split(", ") if kind == "simulated" else []

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    """Every fenced block of every page; ``language`` is "" for a bare block (output)."""
    found = []
    for page in PAGES:
        lines = page.read_text().split("\n")
        i = 0
        while i < len(lines):
            fence = re.match(r"^```(\w*)\s*$", lines[i])
            if fence:
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                comment = re.match(r"^<!-- (.*) -->$", lines[i - 1]) if i else None
                found.append(
                    Example(
                        page,
                        i + 1,
                        fence.group(1),
                        "\n".join(lines[i + 1 : end]) + "\n",
                        comment.group(1) if comment else None,
                    )
                )
                i = end
            i += 1
    return found


def page_files() -> dict[str, str]:
    """The files the pages write out (<!-- file: NAME --> blocks), by name."""
    return {e.marker[6:]: e.code for e in examples() if (e.marker or "").startswith("file: ")}


def known_settings() -> set[str]:
    """Every setting a job reads, those read at import included."""
    return {name for _, rows in settings_by_job() for name, _, _ in rows}
