"""The secrets the tests pass, every way of passing one, and the check that none leaked."""

from __future__ import annotations

__all__ = ["PASSWORD", "SECRET", "WAYS", "assert_clean"]

SECRET = "tok-7f3a9c1e5b"
PASSWORD = "pw-0d4e8a2b6c"

# Each way of passing a secret: (subscribe kwargs for the right secret, for a wrong one,
# what the simulator requires, the secrets that must never show).
WAYS: dict[str, tuple[dict[str, object], dict[str, object], dict[str, object], list[str]]] = {
    "header": (
        {"headers": {"Authorization": f"Bearer {SECRET}"}},
        {"headers": {"Authorization": f"Bearer {SECRET}-x"}},
        {"bearer_token": SECRET},
        [SECRET],
    ),
    "bearer": (
        {"bearer_token": SECRET},
        {"bearer_token": SECRET + "-x"},
        {"bearer_token": SECRET},
        [SECRET],
    ),
    "basic": (
        {"basic_auth": ("ada", PASSWORD)},
        {"basic_auth": ("ada", PASSWORD + "-x")},
        {"basic_auth": ("ada", PASSWORD)},
        [PASSWORD],
    ),
    "query": (
        {"query_token": SECRET},
        {"query_token": SECRET + "-x"},
        {"query_token": SECRET},
        [SECRET],
    ),
}


def assert_clean(text: str, secrets: list[str]) -> None:
    """No secret in ``text``, not even its first 8 characters."""
    for secret in secrets:
        assert secret not in text
        assert secret[:8] not in text  # not even a prefix
