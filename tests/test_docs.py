"""The reference docs: the settings page is what the configuration code reads."""

from __future__ import annotations

from tools.docs_settings import PAGE, settings_page


def test_the_settings_page_lists_exactly_what_the_jobs_read() -> None:
    committed = PAGE.read_text()
    assert committed == settings_page(), (
        "docs/settings.md is out of date: run .venv/bin/python tools/docs_settings.py"
    )
    for name in ("SSE_URL", "DT_PROJECT_ID", "OBELISK_URL", "OUTPUT_FORMAT", "FEATURE_WINDOW"):
        assert f"| `{name}` |" in committed
