"""Environment variables to frozen dataclasses, validated in one place with helpful messages.

Every variable has a default; a wrong value stops the job at start with a message that
names the variable, what it got, and what is allowed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from connectors.obelisk_catalog import TOKEN_PATH as OBELISK_TOKEN_PATH
from connectors.sinks import Cluster
from connectors.sse import (
    DEFAULT_MAX_EVENT_BYTES,
    Auth,
    ClientCredentials,
    ConnectOptions,
    JWTBearer,
    RetryPolicy,
    TokenProvider,
)
from connectors.sse.proxy import Proxy
from connectors.sse.redact import Redactor
from connectors.vendors import DT_EVENT_TYPES
from dataflows.dt_setup import DT_API_URL, DT_IDLE_CLOSE, DT_TOKEN_URL, stream_url
from dataflows.formats import FORMATS, VENDOR_FORMATS, Format, VendorFormat
from dataflows.native import import_settings
from dataflows.obelisk_setup import (
    OBELISK_ALL_NUMBERS,
    OBELISK_REPLAY_EVENTS,
    OBELISK_STREAM,
    OBELISK_URL,
    ObeliskSetup,
)

__all__ = [
    "AT_IMPORT",
    "DEFAULT_RULES",
    "JOB_SETTINGS",
    "MEANINGS",
    "AlertConfig",
    "ConfigError",
    "DemoConfig",
    "FeatureConfig",
    "JobConfig",
    "OutputConfig",
    "RuntimeConfig",
    "StreamConfig",
    "WindowConfig",
    "load_alert_config",
    "load_config",
    "load_feature_config",
    "load_obelisk_settings",
    "load_runtime_config",
    "parse_duration",
    "parse_size",
    "settings_of",
]


T = TypeVar("T")

OutputMode = Literal["new", "append", "overwrite"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("new", "append", "overwrite")
OutputFormat = Literal["jsonl", "delta"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jsonl", "delta")
# Where each stream's socket, chunk framing, SSE parser and decode run: a thread of the
# job, or a process of their own (connectors/sse/remote.py), on another core.
Reader = Literal["thread", "process"]
READERS: tuple[Reader, ...] = ("thread", "process")
DEFAULT_ROLL_SIZE = 128 * 2**20


class ConfigError(ValueError):
    """A setting is wrong; the message says which variable and what to set."""


@dataclass(frozen=True)
class StreamConfig:
    """Where the events come from, in which format, and the connector's own settings
    (``ConnectOptions``, ``Auth``, ``RetryPolicy``) for every stream. ``obelisk``: an
    Obelisk stream to find or create in its Catalog (``dataflows.obelisk_setup``),
    rather than ``urls``."""

    urls: tuple[str, ...] = ()
    format: Format = "auto"
    options: ConnectOptions = field(default_factory=ConnectOptions)
    auth: Auth = field(default_factory=Auth)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    obelisk: ObeliskSetup | None = None
    reader: Reader = "thread"

    def stream_names(self) -> dict[str, str]:
        """Partition name per URL: the URL with its secrets masked (it keys recovery state);
        an Obelisk stream's is its name, as its URL is known once the Catalog answers."""
        if self.obelisk is not None:
            return {self.obelisk.partition: self.obelisk.partition}
        redactor = Redactor([s for s in (self.auth.bearer_token, self.auth.query_token) if s])
        return {redactor.url(url): url for url in self.urls}


@dataclass(frozen=True)
class WindowConfig:
    """Event-time tumbling windows aligned to the UTC epoch, how late a reading may be, and
    how far the stream moves past a quiet sensor's window before it closes anyway."""

    length: timedelta = timedelta(seconds=10)
    lateness: timedelta = timedelta(seconds=2)
    # None: a key's windows close only on its own readings (or at the end).
    idle_close: timedelta | None = timedelta(seconds=30)
    # The main job keeps every key's windows in this many Bytewax keys (key_groups.py).
    key_groups: int = 64


@dataclass(frozen=True)
class FeatureConfig:
    """Sliding windows for features: ``length`` long, one starting every ``step``."""

    length: timedelta = timedelta(seconds=60)
    step: timedelta = timedelta(seconds=10)
    ewma_span: float = 10.0


@dataclass(frozen=True)
class OutputConfig:
    """``directory`` None: JSON Lines on stdout (dead letters on stderr); else, by
    ``format``, hourly JSON Lines part files under it (``connectors.sinks.rolling``),
    each finished at ``roll_size`` bytes, or a Delta table per kind (``.delta``).

    ``recovery``: the recovery directory ``bytewax.run`` was given, so the part files are
    left to the sink, which brings them back to the snapshot it resumes from. Otherwise
    ``mode`` says what a run does with records already there: ``new`` refuses to start,
    ``append`` adds to them, ``overwrite`` removes them first. ``cluster``: this process's
    place in the cluster, whose every worker writes its own part files.
    """

    directory: Path | None = None
    format: OutputFormat = "jsonl"
    recovery: Path | None = None
    mode: OutputMode = "new"
    roll_size: int = DEFAULT_ROLL_SIZE
    # Records older than this (by event time) are removed while the job runs; None: kept.
    retention: timedelta | None = None
    cluster: Cluster = field(default_factory=Cluster)

    @property
    def resume(self) -> bool:
        return self.recovery is not None


@dataclass(frozen=True)
class RuntimeConfig:
    """The process: ``LOG_LEVEL``, ``SENSORWAX_TRACEBACK`` (a full traceback instead of
    one line when a stream cannot go on), and ``STATUS_EVERY`` (None: no status line)."""

    log_level: str = "INFO"
    traceback: bool = False
    status_every: timedelta | None = timedelta(seconds=30)


# The rules the alerts job ships with.
DEFAULT_RULES = Path(__file__).with_name("alert_rules.toml")


@dataclass(frozen=True)
class AlertConfig:
    """``ALERT_RULES``: the TOML rules file of the alerts job."""

    rules: Path = DEFAULT_RULES


@dataclass(frozen=True)
class DemoConfig:
    """The embedded simulator the job starts when ``SSE_URL`` is unset (bounded, with faults)."""

    sensors: int = 4
    rate: float = 20.0
    events: int = 400
    format: VendorFormat = "flat"
    drop_every: int = 250
    malformed_every: int = 300
    seed: int = 0
    # A spike, a stuck sensor and a sensor going quiet (runtime.start_demo_simulator).
    anomalies: bool = True
    # The event time of its first event (UTC); None: when it starts. A fixed start gives
    # jobs run one after the other the same event times, so their outputs line up.
    start: datetime | None = None


@dataclass(frozen=True)
class JobConfig:
    stream: StreamConfig
    window: WindowConfig
    output: OutputConfig
    demo: DemoConfig | None  # set when the job serves its own simulator


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """``250ms``, ``10s``, ``1.5m``, ``2h``, ``30d`` to a timedelta; a bare number is seconds."""
    match = _DURATION.match(text)
    if match is None:
        try:
            return timedelta(seconds=float(text))
        except ValueError:
            raise ValueError(f"{text!r} is not a duration like 500ms, 10s, 5m or 1h") from None
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNITS[unit])


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_size(text: str) -> int:
    """``128MiB``, ``500KB``, ``1GiB``, ``4096`` (bytes) to a number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size like 4096, 500KB, 64MiB or 1GiB")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "b").lower()])


class _Env:
    """Reads variables, collecting every problem so the user fixes them all at once, and
    noting each variable it was asked for with its default (``python -m dataflows``
    lists them from that, so the list cannot drift from the code)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []
        self.read: dict[str, str] = {}

    def _raw(self, name: str, default: str) -> str | None:
        self.read.setdefault(name, default)
        value = self._env.get(name, "").strip()
        return value if value else None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._raw(name, "unset" if default is None else default)
        return value if value else default

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = (self._raw(name, default) or default).lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
            return default
        return value

    def duration(self, name: str, default: str, *, minimum: timedelta = timedelta(0)) -> timedelta:
        raw = self._raw(name, default) or default
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return parse_duration(default)
        if value < minimum:
            self.problems.append(
                f"{name} must be at least {minimum.total_seconds():g}s; got {raw!r}"
            )
            return parse_duration(default)
        return value

    def number(
        self, name: str, default: float, *, minimum: float = 0.0, integer: bool = False
    ) -> float:
        raw = self._raw(name, str(int(default)) if integer else f"{default:g}")
        if raw is None:
            return default
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            self.problems.append(f"{name} must be {kind}; got {raw!r}")
            return default
        if value < minimum:
            self.problems.append(f"{name} must be at least {minimum:g}; got {raw!r}")
            return default
        return value

    def size(self, name: str, default: str, *, minimum: int = 0) -> int:
        raw = self._raw(name, default) or default
        try:
            value = parse_size(raw)
        except ValueError as exc:
            self.problems.append(f"{name}: {exc}")
            return parse_size(default)
        if value < minimum:
            self.problems.append(f"{name} must be at least {minimum} bytes; got {raw!r}")
            return parse_size(default)
        return value

    def moment(self, name: str) -> datetime | None:
        """An ISO 8601 time, UTC unless it says otherwise; None when unset or ``now``."""
        raw = self._raw(name, "now")
        if raw is None or raw.lower() == "now":
            return None
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            self.problems.append(
                f"{name} must be an ISO 8601 time such as 2026-12-03T08:00:00Z, or now; got {raw!r}"
            )
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def environ(self) -> Mapping[str, str]:
        return self._env

    def flag(self, name: str, default: bool) -> bool:
        raw = self._raw(name, "true" if default else "false")
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false; got {raw!r}")
        return default


def _comma_list(text: str | None) -> tuple[str, ...]:
    """A setting's comma-separated values, stripped, empty ones left out."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _is_http_url(url: str) -> bool:
    """An ``http://`` or ``https://`` URL with a host."""
    return re.match(r"^https?://[^/\s]+", url) is not None


def _token_transport(options: ConnectOptions) -> dict[str, Any]:
    """What a token provider shares with the stream: TLS trust, timeout and proxy."""
    return {
        "ca_certs": options.ca_certs,
        "verify": options.verify,
        "timeout": options.connect_timeout,
        "proxy": options.proxy,
    }


def _stream(env: _Env) -> StreamConfig:
    urls = _comma_list(env.text("SSE_URL"))
    for url in urls:
        if not _is_http_url(url):
            shown = Redactor().url(url)
            env.problems.append(f"SSE_URL: {shown!r} is not an http:// or https:// URL")
    options = _connect_options(env)
    fmt: Format = env.choice("SSE_FORMAT", FORMATS, "auto")  # type: ignore[assignment]
    auth = _auth(env, options)
    dt = _dt_setup(env)
    if dt is not None:
        if urls:
            env.problems.append("set SSE_URL or DT_PROJECT_ID, not both")
        heartbeat = options.heartbeat_timeout or 60.0
        urls = (stream_url(dt.api_url, dt.project, heartbeat, dt.event_types),)
        fmt = _vendor_owns(env, fmt, auth, "DT_PROJECT_ID", "dt", "DT_SERVICE_ACCOUNT_*")
        auth = _dt_auth(dt, options)
    obelisk = _obelisk_setup(env)
    if obelisk is not None:
        if urls:
            env.problems.append("set one of SSE_URL, DT_PROJECT_ID and OBELISK_URL")
        credentials = "OBELISK_CLIENT_ID and OBELISK_CLIENT_SECRET"
        fmt = _vendor_owns(env, fmt, auth, "OBELISK_URL", "obelisk", credentials)
        options = replace(options, drop_replays=OBELISK_REPLAY_EVENTS)
        auth = _obelisk_auth(obelisk, options)
    config = StreamConfig(
        urls=urls,
        format=fmt,
        options=options,
        auth=auth,
        retry=_retry(env),
        obelisk=obelisk,
        reader=env.choice("SSE_READER", READERS, "thread"),  # type: ignore[arg-type]
    )
    # Partitions are named by URL with secrets masked: two URLs differing only in a
    # secret would be one partition.
    if obelisk is None and len(config.stream_names()) != len(urls):
        env.problems.append("SSE_URL lists the same stream twice")
    return config


_VENDOR_NAMES = {"dt": "DT's", "obelisk": "Obelisk's"}


def _vendor_owns(
    env: _Env, fmt: Format, auth: Auth, setting: str, vendor: Format, credentials: str
) -> Format:
    """A vendor's set-up (``setting``) brings its format and its credentials: say so to
    an SSE_FORMAT or SSE_* credentials given beside it; returns the vendor's format."""
    if fmt not in ("auto", vendor):
        env.problems.append(
            f"{setting} streams {_VENDOR_NAMES[vendor]} format: unset SSE_FORMAT={fmt}"
        )
    if auth != Auth() or auth.token_provider is not None:
        env.problems.append(
            f"{credentials} are the credentials with {setting}: unset SSE_BEARER_TOKEN, "
            "SSE_BASIC_AUTH, SSE_QUERY_TOKEN and SSE_OAUTH2_*"
        )
    return vendor


@dataclass(frozen=True)
class DtSetup:
    """A Disruptive Technologies project and the service account key that reads it
    (``DT_*``, the variables of DT's own examples); see ``dataflows.dt_setup``."""

    project: str
    key_id: str
    secret: str = field(repr=False)
    email: str | None
    event_types: tuple[str, ...]
    api_url: str
    token_url: str


_DT_ACCOUNT = ("DT_SERVICE_ACCOUNT_KEY_ID", "DT_SERVICE_ACCOUNT_SECRET")


def _dt_setup(env: _Env) -> DtSetup | None:
    """DT_*: a DT project's device stream, or None when DT_PROJECT_ID is unset."""
    project = env.text("DT_PROJECT_ID")
    key_id, secret = (env.text(name) for name in _DT_ACCOUNT)
    email = env.text("DT_SERVICE_ACCOUNT_EMAIL")
    types_text = env.text("DT_EVENT_TYPES")
    api_url = env.text("DT_API_URL", DT_API_URL) or DT_API_URL
    token_url = env.text("DT_TOKEN_URL", DT_TOKEN_URL) or DT_TOKEN_URL
    if project is None:
        given = [
            name
            for name in (*_DT_ACCOUNT, "DT_SERVICE_ACCOUNT_EMAIL", "DT_EVENT_TYPES")
            if env.environ.get(name, "").strip()
        ]
        if given:
            env.problems.append(f"{', '.join(given)}: set DT_PROJECT_ID too (or unset them)")
        return None
    missing = [name for name, value in zip(_DT_ACCOUNT, (key_id, secret), strict=True) if not value]
    if missing:
        env.problems.append(
            f"{', '.join(missing)}: needed with DT_PROJECT_ID (a service account key: DT "
            "Studio, API Integrations, Service Accounts)"
        )
    kinds = _comma_list(types_text)
    unknown = [kind for kind in kinds if kind not in DT_EVENT_TYPES]
    if unknown:
        env.problems.append(
            f"DT_EVENT_TYPES: {', '.join(map(repr, unknown))} not DT's; it takes "
            + ", ".join(DT_EVENT_TYPES)
        )
    for name, url in (("DT_API_URL", api_url), ("DT_TOKEN_URL", token_url)):
        if not _is_http_url(url):
            env.problems.append(f"{name}: {url!r} is not an http(s) URL")
    return DtSetup(project, key_id or "", secret or "", email, kinds, api_url, token_url)


def _dt_auth(dt: DtSetup, options: ConnectOptions) -> Auth:
    """The JWT grant with the account's email (DT's recommended way); basic auth with the
    key id and secret without it, as DT's streaming example does."""
    if not dt.key_id or not dt.secret:
        return Auth()
    if dt.email is None:
        return Auth(basic_auth=(dt.key_id, dt.secret))
    provider = JWTBearer(dt.token_url, dt.key_id, dt.email, dt.secret, **_token_transport(options))
    return Auth(token_provider=provider)


_OBELISK_SETTINGS = (
    "OBELISK_CLIENT_ID",
    "OBELISK_CLIENT_SECRET",
    "OBELISK_DATASETS",
    "OBELISK_METRICS",
    "OBELISK_STREAM",
    "OBELISK_FILTER",
)


def _obelisk_setup(env: _Env, *, datasets_needed: bool = True) -> ObeliskSetup | None:
    """OBELISK_*: the stream to find or create in an Obelisk, or None without OBELISK_URL."""
    url = env.text("OBELISK_URL")
    client_id, secret = env.text("OBELISK_CLIENT_ID"), env.text("OBELISK_CLIENT_SECRET")
    datasets = tuple(dict.fromkeys(_comma_list(env.text("OBELISK_DATASETS"))))
    metrics = tuple(dict.fromkeys(_comma_list(env.text("OBELISK_METRICS", OBELISK_ALL_NUMBERS))))
    name = env.text("OBELISK_STREAM", OBELISK_STREAM) or OBELISK_STREAM
    filter_text = env.text("OBELISK_FILTER")
    if url is None:
        given = [n for n in _OBELISK_SETTINGS if env.environ.get(n, "").strip()]
        if given:
            env.problems.append(
                f"{', '.join(given)}: set OBELISK_URL too (e.g. {OBELISK_URL}), or unset them"
            )
        return None
    if not _is_http_url(url):
        env.problems.append(f"OBELISK_URL: {url!r} is not an http(s) URL (e.g. {OBELISK_URL})")
    missing = [
        n for n, v in (("OBELISK_CLIENT_ID", client_id), ("OBELISK_CLIENT_SECRET", secret)) if not v
    ]
    if missing:
        env.problems.append(
            f"{', '.join(missing)}: needed with OBELISK_URL (a client of yours: the Obelisk "
            "Catalog, My Clients)"
        )
    if datasets_needed and not datasets:
        env.problems.append(
            "OBELISK_DATASETS: the ids of the datasets to stream, comma-separated, are "
            "needed with OBELISK_URL (the Obelisk Catalog lists them)"
        )
    odd = [m for m in metrics if not re.match(r"^[^:\s]+::[^:\s]+$", m)]
    if odd:
        env.problems.append(
            f"OBELISK_METRICS: {', '.join(map(repr, odd))} not <name>::<type> "
            f"(e.g. temperature::number, or {OBELISK_ALL_NUMBERS} for every number)"
        )
    stream_filter: Any = None
    if filter_text is not None:
        try:
            stream_filter = json.loads(filter_text)
        except ValueError:
            env.problems.append(f"OBELISK_FILTER: {filter_text!r} is not JSON (Obelisk's filter)")
    return ObeliskSetup(
        url=url.rstrip("/"),
        client_id=client_id or "",
        secret=secret or "",
        stream=name,
        datasets=datasets,
        metrics=metrics or (OBELISK_ALL_NUMBERS,),
        filter=stream_filter,
    )


def _obelisk_auth(setup: ObeliskSetup, options: ConnectOptions) -> Auth:
    """Obelisk's OAuth2 client credentials, at its token endpoint."""
    if not setup.client_id or not setup.secret:
        return Auth()
    token_url = setup.url + OBELISK_TOKEN_PATH
    provider = ClientCredentials(
        token_url, setup.client_id, setup.secret, **_token_transport(options)
    )
    return Auth(token_provider=provider)


@dataclass(frozen=True)
class ObeliskSettings:
    """What ``python -m dataflows.obelisk`` reads: the Obelisk, its client, the transport."""

    setup: ObeliskSetup
    stream: StreamConfig


def load_obelisk_settings(environ: Mapping[str, str] | None = None) -> ObeliskSettings:
    """OBELISK_* and the transport settings, for the Catalog command; raises ConfigError."""
    return _load(_obelisk_settings, environ)


def _obelisk_settings(env: _Env) -> ObeliskSettings:
    options = _connect_options(env)
    setup = _obelisk_setup(env, datasets_needed=False)
    if setup is None:
        env.problems.append(
            f"OBELISK_URL: the Obelisk to use (e.g. {OBELISK_URL}), with OBELISK_CLIENT_ID "
            "and OBELISK_CLIENT_SECRET"
        )
        setup = ObeliskSetup(url=OBELISK_URL, client_id="", secret="")
    auth = _obelisk_auth(setup, options)
    stream = StreamConfig(
        format="obelisk", options=options, auth=auth, retry=_retry(env), obelisk=setup
    )
    return ObeliskSettings(setup=setup, stream=stream)


def _connect_options(env: _Env) -> ConnectOptions:
    heartbeat = env.duration("SSE_HEARTBEAT_TIMEOUT", "60s", minimum=timedelta(milliseconds=10))
    ca_certs = env.text("SSE_CA_BUNDLE")
    if ca_certs is not None and not Path(ca_certs).is_file():
        env.problems.append(f"SSE_CA_BUNDLE: no file at {ca_certs!r}")
    elif ca_certs is not None:
        try:
            ssl.create_default_context(cafile=ca_certs)
        except (OSError, ssl.SSLError) as exc:
            ssl_error = isinstance(exc, ssl.SSLError)
            reason = "not a PEM file of certificates" if ssl_error else exc.strerror
            env.problems.append(f"SSE_CA_BUNDLE: cannot use {ca_certs!r} ({reason})")
    proxy = env.text("SSE_PROXY")
    if proxy is not None:
        try:
            Proxy.parse(proxy)
        except ValueError as exc:
            env.problems.append(f"SSE_PROXY: {Redactor().url(proxy)!r}: {exc}")
            proxy = None
    return ConnectOptions(
        proxy=proxy,
        connect_timeout=env.duration(
            "SSE_CONNECT_TIMEOUT", "10s", minimum=timedelta(milliseconds=1)
        ).total_seconds(),
        heartbeat_timeout=heartbeat.total_seconds(),
        ca_certs=ca_certs,
        verify=env.flag("SSE_VERIFY_TLS", True),
        max_event_bytes=int(
            env.number("SSE_MAX_EVENT_BYTES", DEFAULT_MAX_EVENT_BYTES, minimum=1, integer=True)
        ),
    )


_CLIENT_SETTINGS = ("SSE_OAUTH2_CLIENT_ID", "SSE_OAUTH2_CLIENT_SECRET")
_JWT_SETTINGS = ("SSE_OAUTH2_JWT_KEY_ID", "SSE_OAUTH2_JWT_SECRET", "SSE_OAUTH2_JWT_ISSUER")


def _token_provider(env: _Env, options: ConnectOptions) -> TokenProvider | None:
    """SSE_OAUTH2_*: a client credentials or a JWT bearer grant, or None."""
    token_url = env.text("SSE_OAUTH2_TOKEN_URL")
    client = {name: env.text(name) for name in _CLIENT_SETTINGS}
    signed = {name: env.text(name) for name in _JWT_SETTINGS}
    scope = env.text("SSE_OAUTH2_SCOPE")
    uses_client = any(client.values()) or scope is not None
    uses_jwt = any(signed.values())
    if token_url is None:
        if uses_client or uses_jwt:
            env.problems.append("SSE_OAUTH2_TOKEN_URL is needed with the other SSE_OAUTH2_*")
        return None
    if not _is_http_url(token_url):
        env.problems.append(f"SSE_OAUTH2_TOKEN_URL: {token_url!r} is not an http(s) URL")
        return None
    if uses_client == uses_jwt:
        env.problems.append(
            "with SSE_OAUTH2_TOKEN_URL set either SSE_OAUTH2_CLIENT_ID and "
            "SSE_OAUTH2_CLIENT_SECRET (client credentials), or SSE_OAUTH2_JWT_KEY_ID, "
            "SSE_OAUTH2_JWT_SECRET and SSE_OAUTH2_JWT_ISSUER (JWT bearer)"
            + (", not both" if uses_client else "")
        )
        return None
    given = client if uses_client else signed
    missing = [name for name, value in given.items() if not value]
    if missing:
        env.problems.append(f"{', '.join(missing)}: needed for this OAuth2 grant")
        return None
    transport = _token_transport(options)
    if uses_client:
        client_id, secret = (client[name] or "" for name in _CLIENT_SETTINGS)
        return ClientCredentials(token_url, client_id, secret, scope, **transport)
    key_id, secret, issuer = (signed[name] or "" for name in _JWT_SETTINGS)
    return JWTBearer(token_url, key_id, issuer, secret, **transport)


def _auth(env: _Env, options: ConnectOptions) -> Auth:
    provider = _token_provider(env, options)
    basic = env.text("SSE_BASIC_AUTH")
    basic_auth: tuple[str, str] | None = None
    if basic is not None:
        user, colon, password = basic.partition(":")
        if not colon or not user:
            env.problems.append("SSE_BASIC_AUTH must be user:password")
        else:
            basic_auth = (user, password)
    bearer = env.text("SSE_BEARER_TOKEN")
    if provider is not None and (bearer or basic is not None):
        env.problems.append(
            "SSE_OAUTH2_* fetches the bearer token itself: unset SSE_BEARER_TOKEN and "
            "SSE_BASIC_AUTH, or the SSE_OAUTH2_* settings"
        )
        return Auth()
    try:
        return Auth(
            bearer_token=bearer,
            basic_auth=basic_auth,
            query_token=env.text("SSE_QUERY_TOKEN"),
            query_token_param=env.text("SSE_QUERY_TOKEN_PARAM", "token") or "token",
            token_provider=provider,
        )
    except ValueError:
        env.problems.append("set SSE_BEARER_TOKEN or SSE_BASIC_AUTH, not both")
        return Auth()


def _retry(env: _Env) -> RetryPolicy:
    initial = env.duration("SSE_RETRY_INITIAL", "1s")
    maximum = env.duration("SSE_RETRY_MAX", "30s")
    if maximum < initial:
        env.problems.append(
            f"SSE_RETRY_MAX ({maximum.total_seconds():g}s) must not be shorter than "
            f"SSE_RETRY_INITIAL ({initial.total_seconds():g}s)"
        )
        maximum = initial
    attempts = env.text("SSE_RETRY_MAX_ATTEMPTS")
    elapsed = env.text("SSE_RETRY_MAX_ELAPSED")
    return RetryPolicy(
        initial_delay=initial.total_seconds(),
        max_delay=maximum.total_seconds(),
        max_attempts=int(env.number("SSE_RETRY_MAX_ATTEMPTS", 0, integer=True))
        if attempts
        else None,
        max_elapsed=env.duration("SSE_RETRY_MAX_ELAPSED", "0s").total_seconds()
        if elapsed
        else None,
        attempts_setting="SSE_RETRY_MAX_ATTEMPTS",
        elapsed_setting="SSE_RETRY_MAX_ELAPSED",
    )


def _demo(env: _Env) -> DemoConfig:
    return DemoConfig(
        sensors=int(env.number("SIM_SENSORS", 4, minimum=1, integer=True)),
        rate=env.number("SIM_RATE", 20.0, minimum=0.001),
        events=int(env.number("SIM_EVENTS", 400, minimum=1, integer=True)),
        format=env.choice("SIM_FORMAT", VENDOR_FORMATS, "flat"),  # type: ignore[arg-type]
        drop_every=int(env.number("SIM_DROP_EVERY", 250, integer=True)),
        malformed_every=int(env.number("SIM_MALFORMED_EVERY", 300, integer=True)),
        seed=int(env.number("SIM_SEED", 0, integer=True)),
        anomalies=env.flag("SIM_ANOMALIES", True),
        start=env.moment("SIM_START"),
    )


def _load(read: Callable[[_Env], T], environ: Mapping[str, str] | None) -> T:
    """``read`` over the environment; raises ConfigError naming every problem."""
    env = _Env(os.environ if environ is None else environ)
    value = read(env)
    if len(env.problems) == 1:
        raise ConfigError(f"invalid configuration: {env.problems[0]}")
    if env.problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(env.problems))
    return value


def load_config(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> JobConfig:
    """Read and validate every setting a job shares (``argv``: ``bytewax.run``'s, for
    its recovery flag); raises ConfigError listing all problems."""
    return _load(partial(_job, argv=sys.argv if argv is None else argv), environ)


def _job(env: _Env, argv: Sequence[str]) -> JobConfig:
    stream = _stream(env)
    # DT's heartbeats bring a quarter of an hour of samples: see dataflows.dt_setup.
    dt = bool(env.environ.get("DT_PROJECT_ID", "").strip())
    idle_close = env.duration("IDLE_CLOSE", DT_IDLE_CLOSE if dt else "30s")
    window = WindowConfig(
        length=env.duration("WINDOW", "10s", minimum=timedelta(milliseconds=1)),
        lateness=env.duration("LATENESS", "2s"),
        idle_close=idle_close if idle_close > timedelta(0) else None,
        key_groups=int(env.number("KEY_GROUPS", 64, minimum=1, integer=True)),
    )
    output = OutputConfig(
        directory=_output_directory(env),
        format=env.choice("OUTPUT_FORMAT", OUTPUT_FORMATS, "jsonl"),  # type: ignore[arg-type]
        recovery=_recovery_directory(env, argv),
        mode=env.choice("OUTPUT_MODE", OUTPUT_MODES, "new"),  # type: ignore[arg-type]
        roll_size=env.size("OUTPUT_ROLL_SIZE", "128MiB", minimum=1024),
        retention=_retention(env),
        cluster=_cluster(env, argv),
    )
    demo = _demo(env) if not (stream.urls or stream.obelisk) else None
    return JobConfig(stream=stream, window=window, output=output, demo=demo)


def _output_directory(env: _Env) -> Path | None:
    out = env.text("OUTPUT", "-")
    if out is None or out == "-":
        return None
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        env.problems.append(f"OUTPUT: cannot create the directory {out!r} ({exc.strerror})")
        return path
    if not os.access(path, os.W_OK | os.X_OK):
        env.problems.append(f"OUTPUT: cannot write in the directory {out!r}")
    return path


def load_feature_config(environ: Mapping[str, str] | None = None) -> FeatureConfig:
    """FEATURE_WINDOW, FEATURE_STEP and FEATURE_EWMA_SPAN; raises ConfigError."""
    return _load(_features, environ)


def _features(env: _Env) -> FeatureConfig:
    length = env.duration("FEATURE_WINDOW", "60s", minimum=timedelta(milliseconds=1))
    step = env.duration("FEATURE_STEP", "10s", minimum=timedelta(milliseconds=1))
    span = env.number("FEATURE_EWMA_SPAN", 10.0, minimum=1.0)
    if step > length:
        env.problems.append(
            f"FEATURE_STEP ({step.total_seconds():g}s) must not be longer than "
            f"FEATURE_WINDOW ({length.total_seconds():g}s): readings would fall between windows"
        )
    return FeatureConfig(length=length, step=step, ewma_span=span)


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def load_runtime_config(environ: Mapping[str, str] | None = None) -> RuntimeConfig:
    """LOG_LEVEL, SENSORWAX_TRACEBACK, STATUS_EVERY and the metrics port; raises ConfigError."""
    return _load(_runtime, environ)


def _runtime(env: _Env) -> RuntimeConfig:
    status = env.duration("STATUS_EVERY", "30s")
    config = RuntimeConfig(
        log_level=env.choice("LOG_LEVEL", _LOG_LEVELS, "info").upper(),
        traceback=env.flag("SENSORWAX_TRACEBACK", False),
        status_every=status if status > timedelta(0) else None,
    )
    # Bytewax serves metrics when the variable is set at all, whatever its value.
    metrics = env.text("BYTEWAX_DATAFLOW_API_ENABLED") is not None
    port = int(env.number("BYTEWAX_DATAFLOW_API_PORT", 3030, minimum=1, integer=True))
    if metrics and not _port_free(port):
        env.problems.append(
            f"BYTEWAX_DATAFLOW_API_PORT: port {port} is in use (another job?); "
            "set BYTEWAX_DATAFLOW_API_PORT to a free port"
        )
    return config


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def load_alert_config(environ: Mapping[str, str] | None = None) -> AlertConfig:
    """ALERT_RULES (default: the rules shipped with the alerts job)."""
    return _load(_alerts, environ)


def _alerts(env: _Env) -> AlertConfig:
    return AlertConfig(rules=Path(env.text("ALERT_RULES") or DEFAULT_RULES))


def _retention(env: _Env) -> timedelta | None:
    # An hour at least: a file of the hour being written is never removed under a writer.
    keep = env.duration("OUTPUT_RETENTION", "0s")
    if keep and keep < timedelta(hours=1):
        env.problems.append(
            f"OUTPUT_RETENTION must be at least 1h (or 0: keep everything); "
            f"got {keep.total_seconds():g}s"
        )
        return None
    return keep or None


def _flag_value(argv: Sequence[str], short: str, long: str) -> str | None:
    """The value ``bytewax.run`` was given for a flag (``-w 2``, ``--workers-per-process=2``)."""
    for at, arg in enumerate(argv):
        if arg in (short, long) and at + 1 < len(argv):
            return argv[at + 1]
        if arg.startswith(long + "="):
            return arg.partition("=")[2]
        if arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            return arg[len(short) :]
    return None


def _cluster(env: _Env, argv: Sequence[str]) -> Cluster:
    """This process's place in the cluster, as ``bytewax.run`` reads it (flags first,
    then its variables); not a setting of ours, so not listed among them."""
    environ = env.environ
    workers = _flag_value(argv, "-w", "--workers-per-process") or environ.get(
        "BYTEWAX_WORKERS_PER_PROCESS", "1"
    )
    process = _flag_value(argv, "-i", "--process-id") or environ.get("BYTEWAX_PROCESS_ID", "0")
    try:
        return Cluster(process=max(int(process), 0), workers=max(int(workers), 1))
    except ValueError:
        return Cluster()  # bytewax.run refuses such a value itself


def _recovery_directory(env: _Env, argv: Sequence[str]) -> Path | None:
    """The recovery directory ``bytewax.run`` was given (``-r`` or its variable)."""
    given = _flag_value(argv, "-r", "--recovery-directory") or env.text(
        "BYTEWAX_RECOVERY_DIRECTORY"
    )
    return Path(given) if given else None


# What each variable means, for ``python -m dataflows --help``; a test checks that every
# variable the loaders read is here and nothing else is.
MEANINGS: dict[str, str] = {
    "SSE_URL": "stream URLs, comma-separated, one partition each; unset: serve the simulator",
    "SSE_FORMAT": "auto, flat, dt (Disruptive Technologies) or obelisk",
    "SSE_READER": "thread, or process: each stream read and decoded in a process of its own, "
    "on another core (up to 1.4x the events a second where the machine has a core to spare)",
    "SSE_BEARER_TOKEN": "a bearer token",
    "SSE_BASIC_AUTH": "user:password for basic auth",
    "SSE_QUERY_TOKEN": "a token sent as a query parameter",
    "SSE_QUERY_TOKEN_PARAM": "the query parameter's name",
    "SSE_OAUTH2_TOKEN_URL": "an OAuth2 token endpoint: the job fetches and renews tokens",
    "SSE_OAUTH2_CLIENT_ID": "client credentials grant: the client id",
    "SSE_OAUTH2_CLIENT_SECRET": "client credentials grant: the client secret",
    "SSE_OAUTH2_SCOPE": "client credentials grant: the scope to ask for",
    "SSE_OAUTH2_JWT_KEY_ID": "JWT bearer grant (Disruptive Technologies): the key id",
    "SSE_OAUTH2_JWT_SECRET": "JWT bearer grant: the key's secret",
    "SSE_OAUTH2_JWT_ISSUER": "JWT bearer grant: the service account's email",
    "SSE_HEARTBEAT_TIMEOUT": "reconnect after this long without a byte (pings count; "
    "DT's ping_interval is five sixths of it)",
    "DT_PROJECT_ID": "a Disruptive Technologies project: read its device stream (no SSE_URL)",
    "DT_SERVICE_ACCOUNT_KEY_ID": "DT: the service account key's id",
    "DT_SERVICE_ACCOUNT_SECRET": "DT: the service account key's secret",
    "DT_SERVICE_ACCOUNT_EMAIL": "DT: the service account's email: the OAuth2 JWT grant "
    "(unset: basic auth)",
    "DT_EVENT_TYPES": "DT: the event types to stream, comma-separated (unset: all)",
    "DT_API_URL": "DT: the REST API's base URL (another region, or a test server)",
    "DT_TOKEN_URL": "DT: the OAuth2 token endpoint",
    "OBELISK_URL": "an Obelisk (e.g. https://obelisk.ilabt.imec.be): find or create the "
    "stream OBELISK_STREAM in its Catalog and read it (no SSE_URL)",
    "OBELISK_CLIENT_ID": "Obelisk: the client's id (client credentials grant)",
    "OBELISK_CLIENT_SECRET": "Obelisk: the client's secret",
    "OBELISK_DATASETS": "Obelisk: the ids of the datasets to stream, comma-separated",
    "OBELISK_METRICS": "Obelisk: the metrics to stream, <name>::<type>, comma-separated",
    "OBELISK_STREAM": "Obelisk: the stream's name; found on a restart, created the first time",
    "OBELISK_FILTER": "Obelisk: a filter for the stream (JSON, Obelisk's filter expression)",
    "SSE_CONNECT_TIMEOUT": "how long a connect may take",
    "SSE_PROXY": "a forward proxy (http://user:pass@host:port) for streams and tokens; unset: "
    "https_proxy, http_proxy, all_proxy and no_proxy as curl reads them",
    "SSE_CA_BUNDLE": "a PEM file of CAs to trust",
    "SSE_VERIFY_TLS": "verify the server's certificate (false is possible, not advised)",
    "SSE_MAX_EVENT_BYTES": "larger events become oversized dead letters",
    "SSE_RETRY_INITIAL": "the reconnect delay after a connection that worked (the server's "
    "retry: replaces it)",
    "SSE_RETRY_MAX": "the longest reconnect delay",
    "SSE_RETRY_MAX_ATTEMPTS": "stop after this many reconnects in a row without an event",
    "SSE_RETRY_MAX_ELAPSED": "stop after this long without an event",
    "WINDOW": "window length (ms, s, m or h)",
    "LATENESS": "a reading this much older than its sensor's newest is a late dead letter",
    "KEY_GROUPS": "sensor_stats keeps every sensor's windows in this many Bytewax keys "
    "(the results do not depend on it)",
    "IDLE_CLOSE": "close a quiet sensor's window once its stream is this far past it; 0: "
    "off (with DT_PROJECT_ID the default is 16m: a DT heartbeat brings 15 min of samples)",
    "OUTPUT": "-: records on stdout, dead letters on stderr; a directory: "
    "OUTPUT/<kind>/date=.../hour=.../ part files and a run record in OUTPUT/runs/",
    "OUTPUT_FORMAT": "jsonl (hourly JSON Lines part files) or delta (a Delta Lake table a kind)",
    "OUTPUT_MODE": "a run without recovery into records already there: new (refuse), append "
    "or overwrite",
    "OUTPUT_RETENTION": "remove records older than this (by event time; e.g. 30d); 0: keep all",
    "OUTPUT_ROLL_SIZE": "a part file is finished at this size (B, KB, MB, GB, KiB, MiB, GiB)",
    "BYTEWAX_RECOVERY_DIRECTORY": "Bytewax's recovery directory (or bytewax.run -r)",
    "SIM_SENSORS": "simulator: sensors",
    "SIM_RATE": "simulator: events per second",
    "SIM_EVENTS": "simulator: events, then the stream ends",
    "SIM_FORMAT": "simulator: flat, dt or obelisk",
    "SIM_DROP_EVERY": "simulator: drop the connection after this many events (0: never)",
    "SIM_MALFORMED_EVERY": "simulator: every n-th event is malformed JSON (0: none)",
    "SIM_SEED": "simulator: the random seed",
    "SIM_ANOMALIES": "simulator: sensor 0 reads 10 too high from a quarter of its event time "
    "for a tenth of it, sensor 3 is stuck from 40% to 70%, sensor 2 goes quiet at 30%",
    "SIM_START": "simulator: the event time of its first event (ISO 8601, UTC), or now; "
    "jobs run on the same start write outputs that line up in event time",
    "LOG_LEVEL": "debug, info, warning or error (to stderr, in UTC, secrets masked)",
    "SENSORWAX_TRACEBACK": "a full traceback instead of one line when a stream cannot go on",
    "STATUS_EVERY": "a status line on stderr this often; 0: none",
    "BYTEWAX_DATAFLOW_API_ENABLED": "set: serve metrics at :PORT/metrics (Bytewax's endpoint)",
    "BYTEWAX_DATAFLOW_API_PORT": "the metrics port",
    "FEATURE_WINDOW": "features: sliding window length",
    "FEATURE_STEP": "features: a window starts this often",
    "FEATURE_EWMA_SPAN": "features: the span of the exponentially weighted mean",
    "ALERT_RULES": "alerts: the TOML rules file (unset: dataflows/alert_rules.toml)",
}

# The settings each job reads, in the order they are listed.
JOB_SETTINGS: dict[str, tuple[Callable[[_Env], object], ...]] = {
    "sensor_stats": (partial(_job, argv=()), _runtime),
    "features": (partial(_job, argv=()), _runtime, _features),
    "alerts": (partial(_job, argv=()), _runtime, _alerts),
}


def settings_of(job: str, environ: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting ``job`` reads; the defaults as
    they apply beside ``environ`` (IDLE_CLOSE's depends on DT_PROJECT_ID)."""
    env = _Env(environ or {})
    for read in JOB_SETTINGS[job]:
        read(env)
    return [(name, default, _meaning(name)) for name, default in env.read.items()]


def _meaning(name: str) -> str:
    meaning = MEANINGS.get(name, "")
    return f"{meaning} (never logged)" if name in SECRET_SETTINGS else meaning


# The group of settings read as the package is imported (``dataflows.native``), before
# any job's: the last that ``settings_by_job`` lists.
AT_IMPORT = "at import"


def settings_by_job() -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """The settings as the help and the settings page group them: the first job's, which
    every job reads (``None``), then each other job's own (a job with none is left out),
    then those every job reads at import (``AT_IMPORT``)."""
    shared: set[str] | None = None
    groups: list[tuple[str | None, list[tuple[str, str, str]]]] = []
    for job in JOB_SETTINGS:
        rows = settings_of(job)
        if shared is None:
            shared = {name for name, _, _ in rows}
            groups.append((None, rows))
            continue
        own = [row for row in rows if row[0] not in shared]
        if own:
            groups.append((job, own))
    groups.append((AT_IMPORT, import_settings()))
    return groups


# Settings whose values are secrets: the run record shows only whether they were set.
SECRET_SETTINGS = frozenset(
    {
        "SSE_BEARER_TOKEN",
        "SSE_BASIC_AUTH",
        "SSE_QUERY_TOKEN",
        "SSE_OAUTH2_CLIENT_SECRET",
        "SSE_OAUTH2_JWT_SECRET",
        "DT_SERVICE_ACCOUNT_SECRET",
        "OBELISK_CLIENT_SECRET",
    }
)
_URL_SETTINGS = frozenset(
    {"SSE_URL", "SSE_OAUTH2_TOKEN_URL", "DT_API_URL", "DT_TOKEN_URL", "SSE_PROXY", "OBELISK_URL"}
)


def settings_in_effect(job: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every setting ``job`` reads, as it is set or defaulted, with secrets masked (and
    a token in a URL's query or user info), for the job's run record."""
    environ = os.environ if environ is None else environ
    secrets = [environ.get(name, "").strip() for name in SECRET_SETTINGS]
    # A basic auth password alone is a secret too, wherever it appears.
    secrets += [environ.get("SSE_BASIC_AUTH", "").partition(":")[2].strip()]
    redactor = Redactor([secret for secret in secrets if secret])
    shown: dict[str, str] = {}
    # Every setting, with each default as it applies beside this environment.
    applied = {name: default for name, default, _ in settings_of(job, environ)}
    for name, listed, _ in settings_of(job):
        default = applied.get(name, listed)
        value = environ.get(name, "").strip()
        if name in SECRET_SETTINGS:
            shown[name] = "***" if value else "unset"
        elif name in _URL_SETTINGS and value:
            shown[name] = ",".join(redactor.url(u.strip()) for u in value.split(","))
        else:
            shown[name] = redactor.text(value) if value else default
    return shown
