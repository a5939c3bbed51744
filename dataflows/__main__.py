"""``python -m dataflows``: the jobs and every setting they read, from the configuration code."""

from __future__ import annotations

import argparse
import importlib
import sys

from dataflows.config import AT_IMPORT, JOB_SETTINGS, settings_by_job
from dataflows.version import version_line

_USAGE = "python -m bytewax.run dataflows.JOB [Bytewax's flags: -w, -i, -a, -r, -s, -b]"


def describe() -> str:
    """The help text: each job, then each job's settings with default and meaning."""
    lines = [f"usage: {_USAGE}", "", "jobs:"]
    for job in JOB_SETTINGS:
        doc = (importlib.import_module(f"dataflows.{job}").__doc__ or "").strip()
        lines.append(f"  {job:<14} {doc.splitlines()[0] if doc else ''}")
    titles = {None: "every job (environment variables)", AT_IMPORT: "every job, read at import"}
    groups = [(titles.get(only, f"{only} only"), rows) for only, rows in settings_by_job()]
    for title, rows in groups:
        lines += ["", f"settings of {title}:"]
        width = max(len(name) for name, _, _ in rows)
        lines += [
            f"  {name:<{width}}  {meaning} (default: {default})" for name, default, meaning in rows
        ]
    lines += ["", "The README and docs/ have the details; a wrong value stops a job (exit 2)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataflows",
        description="List sensorwax's jobs and every setting they read.",
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show the jobs and settings")
    parser.add_argument("--version", action="store_true", help="show the versions")
    if parser.parse_args(argv).version:
        print(version_line())
        return 0
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
