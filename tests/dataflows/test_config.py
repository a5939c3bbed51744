"""Settings from the environment: defaults, parsing, and messages that name the variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from connectors.sse import ClientCredentials, JWTBearer
from dataflows.config import (
    DEFAULT_RULES,
    ConfigError,
    RuntimeConfig,
    load_alert_config,
    load_config,
    load_runtime_config,
    parse_duration,
    settings_in_effect,
    settings_of,
)


def test_defaults_serve_the_embedded_simulator() -> None:
    config = load_config({})
    assert config.stream.urls == ()
    assert config.demo is not None
    assert config.window.length == timedelta(seconds=10)
    assert config.window.lateness == timedelta(seconds=2)
    assert config.output.directory is None
    assert config.stream.format == "auto"


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("2026-12-03T08:00:00Z", datetime(2026, 12, 3, 8, tzinfo=UTC)),
        ("2026-12-03T08:00:00", datetime(2026, 12, 3, 8, tzinfo=UTC)),  # naive: UTC
        ("2026-12-03T09:30:00+01:00", datetime(2026, 12, 3, 8, 30, tzinfo=UTC)),
        ("now", None),
    ],
)
def test_the_simulators_start_is_an_iso_time_or_now(text: str, start: datetime | None) -> None:
    demo = load_config({"SIM_START": text}).demo
    assert demo is not None and demo.start == start
    assert load_config({}).demo.start is None  # type: ignore[union-attr]


def test_a_start_that_is_no_time_is_named() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"SIM_START": "yesterday"})
    assert "SIM_START must be an ISO 8601 time such as 2026-12-03T08:00:00Z" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("10s", 10), ("1.5m", 90), ("2h", 7200), ("3", 3), (" 5 s ", 5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_a_full_configuration(tmp_path: Path, ca: trustme.CA) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    config = load_config(
        {
            "SSE_URL": "http://127.0.0.1:1/a, https://example.invalid/b?token=abc",
            "SSE_FORMAT": "DT",
            "SSE_BASIC_AUTH": "ada:pa:ss",
            "SSE_HEARTBEAT_TIMEOUT": "30s",
            "SSE_CA_BUNDLE": str(bundle),
            "SSE_RETRY_MAX_ATTEMPTS": "5",
            "SSE_READER": "Process",
            "WINDOW": "1m",
            "LATENESS": "500ms",
            "OUTPUT": str(tmp_path / "out"),
        }
    )
    assert config.stream.urls == ("http://127.0.0.1:1/a", "https://example.invalid/b?token=abc")
    assert config.stream.format == "dt"
    assert config.stream.auth.basic_auth == ("ada", "pa:ss")
    assert config.stream.options.heartbeat_timeout == 30
    assert config.stream.options.ca_certs == str(bundle)
    assert config.stream.retry.max_attempts == 5
    assert config.stream.retry.attempts_setting == "SSE_RETRY_MAX_ATTEMPTS"
    assert config.stream.reader == "process"
    assert load_config({}).stream.reader == "thread"
    assert config.window.length == timedelta(minutes=1)
    assert config.output.directory == tmp_path / "out"
    assert config.demo is None
    assert list(config.stream.stream_names()) == [
        "http://127.0.0.1:1/a",
        "https://example.invalid/b?token=***",
    ]
    assert "pa:ss" not in repr(config)


def test_every_mistake_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(
            {
                "SSE_URL": "ftp://x/y",
                "SSE_FORMAT": "xml",
                "WINDOW": "0s",
                "LATENESS": "soon",
                "SSE_BASIC_AUTH": "nopassword",
                "SSE_VERIFY_TLS": "maybe",
                "SSE_MAX_EVENT_BYTES": "big",
                "SSE_CA_BUNDLE": "/no/such/file.pem",
                "SSE_RETRY_INITIAL": "10s",
                "SSE_RETRY_MAX": "5s",
                "SSE_READER": "fork",
            }
        )
    message = str(raised.value)
    for expected in (
        "SSE_URL: 'ftp://x/y' is not an http:// or https:// URL",
        "SSE_FORMAT must be one of auto, flat, dt, obelisk; got 'xml'",
        "WINDOW must be at least 0.001s; got '0s'",
        "LATENESS: 'soon' is not a duration",
        "SSE_BASIC_AUTH must be user:password",
        "SSE_VERIFY_TLS must be true or false; got 'maybe'",
        "SSE_MAX_EVENT_BYTES must be a whole number; got 'big'",
        "SSE_CA_BUNDLE: no file at '/no/such/file.pem'",
        "SSE_RETRY_MAX (5s) must not be shorter than SSE_RETRY_INITIAL (10s)",
        "SSE_READER must be one of thread, process; got 'fork'",
    ):
        assert expected in message


def test_secrets_do_not_show_in_messages() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(
            {
                "SSE_URL": "ftp://u:hunter2@x/y?token=sekrit",
                "SSE_BEARER_TOKEN": "b",
                "SSE_BASIC_AUTH": "u:p",
            }
        )
    assert "hunter2" not in str(raised.value) and "sekrit" not in str(raised.value)
    assert "not both" in str(raised.value)


def test_the_same_stream_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="same stream twice"):
        load_config({"SSE_URL": "http://h/a?token=1,http://h/a?token=2"})


def test_process_settings_are_read_and_checked_here() -> None:
    assert load_runtime_config({}) == RuntimeConfig(log_level="INFO", traceback=False)
    runtime = load_runtime_config({"LOG_LEVEL": "debug", "SENSORWAX_TRACEBACK": "1"})
    assert runtime == RuntimeConfig(log_level="DEBUG", traceback=True)
    with pytest.raises(ConfigError, match="LOG_LEVEL must be one of debug, info, warning"):
        load_runtime_config({"LOG_LEVEL": "loud"})


@pytest.mark.parametrize(
    ("environ", "argv", "resume"),
    [
        ({}, ["bytewax.run", "dataflows.sensor_stats"], False),
        ({}, ["bytewax.run", "dataflows.sensor_stats", "-r", "state"], True),
        ({}, ["bytewax.run", "m", "--recovery-directory=state"], True),
        ({"BYTEWAX_RECOVERY_DIRECTORY": "state"}, ["bytewax.run", "m"], True),
    ],
)
def test_output_files_are_kept_for_recovery_only_when_it_is_configured(
    environ: dict[str, str], argv: list[str], resume: bool, tmp_path: Path
) -> None:
    assert load_config({"OUTPUT": str(tmp_path), **environ}, argv).output.resume is resume


def test_the_alert_rules_file_defaults_to_the_shipped_one(tmp_path: Path) -> None:
    assert load_alert_config({}).rules == DEFAULT_RULES
    assert load_alert_config({"ALERT_RULES": str(tmp_path / "r.toml")}).rules == tmp_path / "r.toml"


def test_oauth2_client_credentials_and_jwt_bearer_settings() -> None:
    base = {"SSE_URL": "https://api.example.invalid/s", "SSE_OAUTH2_TOKEN_URL": "https://id/t"}
    client = load_config(
        {
            **base,
            "SSE_OAUTH2_CLIENT_ID": "c",
            "SSE_OAUTH2_CLIENT_SECRET": "s3cr3t-value",
            "SSE_OAUTH2_SCOPE": "read",
        }
    ).stream.auth.token_provider
    assert isinstance(client, ClientCredentials)
    assert (client.token_url, client.client_id, client.scope) == ("https://id/t", "c", "read")
    signed = load_config(
        {
            **base,
            "SSE_OAUTH2_JWT_KEY_ID": "k",
            "SSE_OAUTH2_JWT_SECRET": "s3cr3t-value",
            "SSE_OAUTH2_JWT_ISSUER": "me@example.invalid",
        }
    )
    assert isinstance(signed.stream.auth.token_provider, JWTBearer)
    assert signed.stream.auth.kind == "oauth2"
    assert "s3cr3t-value" not in repr(signed)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"SSE_OAUTH2_CLIENT_ID": "c"}, "SSE_OAUTH2_TOKEN_URL is needed"),
        ({"SSE_OAUTH2_TOKEN_URL": "https://id/t"}, "either SSE_OAUTH2_CLIENT_ID"),
        (
            {
                "SSE_OAUTH2_TOKEN_URL": "https://id/t",
                "SSE_OAUTH2_CLIENT_ID": "c",
                "SSE_OAUTH2_JWT_KEY_ID": "k",
            },
            "(JWT bearer), not both",
        ),
        (
            {"SSE_OAUTH2_TOKEN_URL": "https://id/t", "SSE_OAUTH2_CLIENT_ID": "c"},
            "SSE_OAUTH2_CLIENT_SECRET: needed for this OAuth2 grant",
        ),
        (
            {"SSE_OAUTH2_TOKEN_URL": "https://id/t", "SSE_OAUTH2_JWT_SECRET": "x"},
            "SSE_OAUTH2_JWT_KEY_ID, SSE_OAUTH2_JWT_ISSUER: needed",
        ),
        ({"SSE_OAUTH2_TOKEN_URL": "id/t", "SSE_OAUTH2_CLIENT_ID": "c"}, "not an http(s) URL"),
        (
            {
                "SSE_OAUTH2_TOKEN_URL": "https://id/t",
                "SSE_OAUTH2_CLIENT_ID": "c",
                "SSE_OAUTH2_CLIENT_SECRET": "s",
                "SSE_BEARER_TOKEN": "b",
            },
            "unset SSE_BEARER_TOKEN and SSE_BASIC_AUTH",
        ),
    ],
)
def test_oauth2_settings_that_do_not_fit_are_named(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config({"SSE_URL": "https://api.example.invalid/s", **environ})
    assert problem in str(raised.value)


def test_idle_close_defaults_to_30s_and_0_turns_it_off() -> None:
    assert load_config({}).window.idle_close == timedelta(seconds=30)
    assert load_config({"IDLE_CLOSE": "5m"}).window.idle_close == timedelta(minutes=5)
    assert load_config({"IDLE_CLOSE": "0"}).window.idle_close is None
    with pytest.raises(ConfigError, match="IDLE_CLOSE: 'soon' is not a duration"):
        load_config({"IDLE_CLOSE": "soon"})


def test_the_settings_in_a_run_record_show_no_secret() -> None:
    environ = {
        "SSE_URL": "https://bob:hunter2@api.example.com/s?token=abc123,https://x.example/s?k=zz9",
        "SSE_BASIC_AUTH": "bob:hunter2",
        "SSE_QUERY_TOKEN": "zz9",
        "WINDOW": "5s",
    }
    shown = settings_in_effect("sensor_stats", environ)
    text = repr(shown)
    for secret in ("hunter2", "abc123", "zz9"):
        assert secret not in text
    assert shown["SSE_BASIC_AUTH"] == "***" and shown["SSE_BEARER_TOKEN"] == "unset"
    assert shown["WINDOW"] == "5s" and shown["LATENESS"] == "2s"
    assert set(shown) == {name for name, _, _ in settings_of("sensor_stats")}


def test_obelisk_settings_name_a_stream_to_find_or_create_and_its_client() -> None:
    config = load_config(
        {
            "OBELISK_URL": "https://obelisk.example/",
            "OBELISK_CLIENT_ID": "client-7",
            "OBELISK_CLIENT_SECRET": "obelisk-secret-7",
            "OBELISK_DATASETS": "ds-a, ds-b,ds-a",
        }
    )
    stream = config.stream
    assert stream.obelisk is not None and config.demo is None
    assert stream.obelisk.url == "https://obelisk.example"
    assert (stream.obelisk.datasets, stream.obelisk.metrics) == (("ds-a", "ds-b"), ("*::number",))
    assert stream.obelisk.stream == "sensorwax" and stream.urls == ()
    assert stream.stream_names() == {"obelisk:sensorwax": "obelisk:sensorwax"}
    assert stream.format == "obelisk"
    provider = stream.auth.token_provider
    assert isinstance(provider, ClientCredentials)
    assert provider.token_url == "https://obelisk.example/api/v3/auth/token"
    assert provider.client_id == "client-7"
    # Obelisk resumes from its acknowledgements: what it sends again is dropped.
    assert stream.options.drop_replays > 0
    assert "obelisk-secret-7" not in repr(config)
    assert load_config({"SSE_URL": "http://127.0.0.1:9/s"}).stream.options.drop_replays == 0
