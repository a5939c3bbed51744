"""Access tokens that expire: the TokenProvider protocol and the two OAuth2 grants vendors use.

A subscription asks its provider for a token before every connect and sends it as
``Authorization: Bearer``. The built-in providers fetch a token from an OAuth2 token
endpoint, reuse it until shortly before ``expires_in`` runs out, and fetch anew when asked
for a fresh one (the stream answered 401):

- ``ClientCredentials``: RFC 6749 section 4.4 (Obelisk), the client authenticated with HTTP
  Basic as section 2.3.1 prefers.
- ``JWTBearer``: RFC 7523 (Disruptive Technologies' service accounts): an HS256 JWT with
  ``kid`` = key id, ``iss`` = the account's email, ``aud`` = the token endpoint, ``iat``
  and ``exp`` one hour later, exchanged for an access token.

A token endpoint that refuses the credentials raises ``SSETokenError`` (fatal); one that
cannot be reached or answers 429/5xx raises ``TokenEndpointUnavailable``, which a
subscription retries with its usual backoff.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
from urllib3.exceptions import HTTPError

from connectors.sse.errors import SSETokenError
from connectors.sse.proxy import pool_manager, proxy_for
from connectors.sse.redact import Redactor

__all__ = [
    "AccessToken",
    "ClientCredentials",
    "JWTBearer",
    "TokenEndpointUnavailable",
    "TokenProvider",
]

# A token is renewed this share of its lifetime before it runs out, at most a minute.
_RENEW_SHARE = 0.1
_RENEW_MAX_SECONDS = 60.0
# Disruptive Technologies accepts assertions that live at most one hour.
_ASSERTION_SECONDS = 3600
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ERROR_BODY_BYTES = 512


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when to stop using it (monotonic seconds; None: not known)."""

    value: str = field(repr=False)
    fetched_at: float
    renew_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.renew_at is None or now < self.renew_at


class TokenProvider(Protocol):
    """Anything that hands out a current access token; called before every connect."""

    def access_token(self, *, fresh: bool = False) -> AccessToken:
        """A token to send now; ``fresh``: the last one was refused, fetch a new one."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """The credentials it holds (client secret, signing key...), for the redactor."""
        ...


class TokenEndpointUnavailable(Exception):
    """The token endpoint could not be reached or was overloaded; retrying may help."""


class _OAuth2Grant(ABC):
    """Fetches, caches and renews a token from ``token_url``; subclasses give the form."""

    def __init__(
        self,
        token_url: str,
        *,
        ca_certs: str | None = None,
        verify: bool = True,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        parts = urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a token URL needs http:// or https:// and a host, got {token_url!r}")
        self.token_url = token_url
        # Through the stream's forward proxy (or the environment's), as curl would go.
        self.proxy = proxy_for(token_url, proxy, os.environ if trust_env else {})
        self._verify = verify
        self._ca_certs = ca_certs
        self._pool = self._new_pool()
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._sent: list[str] = []  # what each request sent that is secret (assertions)
        self.fetches = 0

    def _new_pool(self) -> urllib3.PoolManager:
        return pool_manager(
            self.token_url,
            self.proxy,
            verify=self._verify,
            ca_certs=self._ca_certs,
            num_pools=1,
            maxsize=1,
        )

    def __getstate__(self) -> dict[str, Any]:
        # For a reader process: the settings go, the pool, lock and cached token do not.
        state = dict(self.__dict__)
        for live in ("_pool", "_lock", "_token"):
            del state[live]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pool = self._new_pool()
        self._lock = threading.Lock()
        self._token = None

    def access_token(self, *, fresh: bool = False) -> AccessToken:
        with self._lock:
            token = self._token
            if not fresh and token is not None and token.usable(self._clock()):
                return token
            self._token = self._fetch()
            return self._token

    def secrets(self) -> tuple[str, ...]:
        proxied = () if self.proxy is None else self.proxy.secrets()
        return (*self._credentials(), *self._sent, *proxied)

    @abstractmethod
    def _credentials(self) -> tuple[str, ...]:
        """The grant's own secrets."""

    @abstractmethod
    def _form(self) -> tuple[dict[str, str], dict[str, str]]:
        """The form fields and extra headers of one token request."""

    def _fetch(self) -> AccessToken:
        fields, headers = self._form()
        redactor = Redactor(self.secrets())
        try:
            response = self._pool.request(
                "POST",
                self.token_url,
                body=urlencode(fields),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                    **headers,
                },
                retries=False,
                timeout=self._timeout,
                preload_content=False,
            )
        except HTTPError as exc:
            raise TokenEndpointUnavailable(
                f"token endpoint {self.token_url}: {redactor.text(str(exc))}"
            ) from None
        try:
            body = response.read(1 << 20)
        except HTTPError as exc:
            raise TokenEndpointUnavailable(
                f"token endpoint {self.token_url}: {redactor.text(str(exc))}"
            ) from None
        finally:
            response.release_conn()
        status = response.status
        if status == 429 or status >= 500:
            raise TokenEndpointUnavailable(f"token endpoint {self.token_url}: HTTP {status}")
        if status != 200:
            raise SSETokenError(
                f"token endpoint {self.token_url} refused the credentials: HTTP {status}"
                f"{_oauth2_error(body, redactor)}; check the client id and secret "
                "(or key id, issuer and secret) and that they are not revoked",
                status=status,
            )
        return self._token_from(body, redactor)

    def _token_from(self, body: bytes, redactor: Redactor) -> AccessToken:
        try:
            answer = orjson.loads(body)
        except ValueError:
            answer = None
        value = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(value, str) or not value:
            raise SSETokenError(
                f"token endpoint {self.token_url} answered 200 without an access_token: "
                f"{redactor.text(body[:_ERROR_BODY_BYTES].decode('utf-8', 'replace'))!r}",
                status=200,
            )
        self.fetches += 1
        now = self._clock()
        lifetime = answer.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            return AccessToken(value, now)
        renew = min(lifetime * _RENEW_SHARE, _RENEW_MAX_SECONDS)
        return AccessToken(value, now, now + lifetime - renew)


def _oauth2_error(body: bytes, redactor: Redactor) -> str:
    """RFC 6749 section 5.2's ``error`` and ``error_description``, or the body's start."""
    try:
        answer = orjson.loads(body)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        description = answer.get("error_description")
        detail = f": {description}" if isinstance(description, str) and description else ""
        return redactor.text(f" ({answer['error']}{detail})")
    text = " ".join(body[:_ERROR_BODY_BYTES].decode("utf-8", "replace").split())
    return f" (body: {redactor.text(text)!r})" if text else ""


class ClientCredentials(_OAuth2Grant):
    """OAuth2 client credentials (RFC 6749 section 4.4), as Obelisk issues them."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        **transport: Any,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("ClientCredentials needs a client id and a client secret")
        super().__init__(token_url, **transport)
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _credentials(self) -> tuple[str, ...]:
        return (self._secret, self._basic())

    def _basic(self) -> str:
        # RFC 6749 section 2.3.1: both parts form-encoded before the Basic encoding.
        pair = f"{_form_encode(self.client_id)}:{_form_encode(self._secret)}"
        return base64.b64encode(pair.encode()).decode("ascii")

    def _form(self) -> tuple[dict[str, str], dict[str, str]]:
        fields = {"grant_type": "client_credentials"}
        if self.scope:
            fields["scope"] = self.scope
        return fields, {"Authorization": f"Basic {self._basic()}"}


class JWTBearer(_OAuth2Grant):
    """An RFC 7523 JWT-bearer grant, as Disruptive Technologies' service accounts use."""

    def __init__(
        self, token_url: str, key_id: str, issuer: str, secret: str, **transport: Any
    ) -> None:
        if not key_id or not issuer or not secret:
            raise ValueError("JWTBearer needs a key id, an issuer and a secret")
        super().__init__(token_url, **transport)
        self.key_id = key_id
        self.issuer = issuer
        self._secret = secret

    def __repr__(self) -> str:
        return (
            f"JWTBearer(token_url={self.token_url!r}, key_id={self.key_id!r}, "
            f"issuer={self.issuer!r})"
        )

    def _credentials(self) -> tuple[str, ...]:
        return (self._secret,)

    def _form(self) -> tuple[dict[str, str], dict[str, str]]:
        # Imported here: PyJWT loads cryptography, a tenth of a second at the start of
        # every job, and only this exchange signs anything.
        import jwt

        issued = int(time.time())
        assertion = jwt.encode(
            {
                "iss": self.issuer,
                "aud": self.token_url,
                "iat": issued,
                "exp": issued + _ASSERTION_SECONDS,
            },
            self._secret,
            algorithm="HS256",
            headers={"kid": self.key_id},
        )
        # The last assertion is enough to mask: each is good for an hour only.
        self._sent[:] = [assertion]
        return {"grant_type": _JWT_BEARER, "assertion": assertion}, {}


def _form_encode(text: str) -> str:
    return urlencode({"": text})[1:]
