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

from dataflows.config import AT_IMPORT, SECRET_SETTINGS, settings_by_job  # noqa: E402

INTRO = """# Settings

Every job is configured by environment variables, read in one place
(`dataflows/config.py`) and checked at start: a wrong value stops the job with one line
that says what to set (exit status 2). This page is written from that code
(`python tools/docs_settings.py`; a test fails when it is out of date), as
`python -m dataflows --help` prints it, so it lists exactly what the jobs read.
Durations take a unit (`500ms`, `10s`, `16m`, `1h`).
"""

# Where the docs say more about a setting: each row links there (the build checks them).
MORE = {
    "SSE_URL": "[Streams](streams.md)",
    "SSE_HEARTBEAT_TIMEOUT": "[Reconnecting](streams.md#reconnecting)",
    "SSE_PROXY": "[Behind a proxy](streams.md#behind-a-proxy)",
    "SSE_FORMAT": "[Formats](main-job.md#formats)",
    "SSE_OAUTH2_TOKEN_URL": "[Tokens that expire](streams.md#tokens-that-expire)",
    "DT_PROJECT_ID": "[Disruptive Technologies](vendors.md#disruptive-technologies)",
    "OBELISK_URL": "[Obelisk](vendors.md#obelisk)",
    "SSE_RETRY_INITIAL": "[Reconnecting](streams.md#reconnecting)",
    "IDLE_CLOSE": "[Sensors that go quiet](main-job.md#sensors-that-go-quiet)",
    "LATENESS": "[Event time](main-job.md#event-time)",
    "KEY_GROUPS": "[Fleets](streams.md#fleets-key-groups)",
    "OUTPUT": "[Output](output.md)",
    "OUTPUT_FORMAT": "[Output](output.md)",
    "BYTEWAX_RECOVERY_DIRECTORY": "[Guarantees](guarantees.md)",
    "SIM_SENSORS": "[The simulator](simulator.md)",
    "STATUS_EVERY": "[Operating it](operating.md)",
    "BYTEWAX_DATAFLOW_API_ENABLED": "[Operating it](operating.md)",
    "FEATURE_WINDOW": "[Features](features-and-alerts.md#features-dataflowsfeatures)",
    "ALERT_RULES": "[Alerts](features-and-alerts.md#alerts-dataflowsalerts)",
    "SENSORWAX_NATIVE": "[What makes it fast](benchmarks.md#what-makes-it-fast)",
}


def settings_page() -> str:
    """The page: a table for the settings every job reads, then one for each job's own,
    then the one read at import."""
    titles = {None: "Every job", AT_IMPORT: "Every job, read at import"}
    groups = [(titles.get(job, f"`{job}` only"), rows) for job, rows in settings_by_job()]
    parts = [INTRO]
    for title, rows in groups:
        parts.append(f"## {title}\n")
        parts.append("| Setting | Default | What it does |\n|---|---|---|")
        for name, default, meaning in rows:
            text = meaning + "."
            if name in SECRET_SETTINGS:
                text += " The run record says only whether it was set."
            if name in MORE:
                text += f" See {MORE[name]}."
            escaped = text.replace("|", "\\|")
            parts.append(f"| `{name}` | `{default}` | {escaped} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(settings_page())
    print(f"wrote {PAGE.relative_to(ROOT)}")
