"""The simulator's OAuth2 token endpoint: client credentials and RFC 7523 JWT bearer grants.

Like the vendors': a token lasts ``token_lifetime`` seconds; the stream answers 401 to an
unknown or expired token, and ends a stream when the token it was opened with expires.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote_plus

import jwt

__all__ = ["OAuth2Server", "TokenIssuer", "TokenRequest"]

TOKEN_PATH = "/oauth2/token"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Disruptive Technologies refuses assertions that live longer than an hour.
_MAX_ASSERTION_SECONDS = 3600


@dataclass(frozen=True)
class OAuth2Server:
    """Who may get a token, and for how long.

    - ``clients``: client id -> client secret, for the client credentials grant.
    - ``jwt_keys``: key id -> (secret, issuer), for the JWT bearer grant.
    - ``token_lifetime``: seconds a token is good for (``expires_in``).
    - ``unavailable``: statuses answered to the first token requests, in order (503...).
    """

    clients: Mapping[str, str] = field(default_factory=dict, repr=False)
    jwt_keys: Mapping[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    token_lifetime: float = 3600.0
    unavailable: tuple[int, ...] = ()

    def secrets(self) -> list[str]:
        return [*self.clients.values(), *(secret for secret, _ in self.jwt_keys.values())]


@dataclass(frozen=True)
class TokenRequest:
    """One request to the token endpoint as the server answered it."""

    grant: str
    status: int


class TokenIssuer:
    """Answers token requests and remembers each token's expiry (monotonic seconds)."""

    def __init__(self, config: OAuth2Server) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._requests: list[TokenRequest] = []

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def issued(self) -> list[str]:
        """Every access token handed out, in order."""
        with self._lock:
            return list(self._tokens)

    def expires_at(self, token: str) -> float | None:
        """When ``token`` stops being accepted; None for a token never issued."""
        with self._lock:
            return self._tokens.get(token)

    def answer(
        self, body: bytes, authorization: str, token_url: str
    ) -> tuple[int, dict[str, object]]:
        """The status and JSON body for a token request."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")
        with self._lock:
            index = len(self._requests)
        answer: dict[str, object]
        if index < len(self._config.unavailable):
            status, answer = self._config.unavailable[index], {"error": "temporarily_unavailable"}
        elif grant == "client_credentials":
            status, answer = self._client_credentials(form, authorization)
        elif grant == _JWT_BEARER:
            status, answer = self._jwt_bearer(form.get("assertion", ""), token_url)
        else:
            status, answer = 400, {"error": "unsupported_grant_type"}
        with self._lock:
            self._requests.append(TokenRequest(grant, status))
        return status, answer

    def _client_credentials(
        self, form: dict[str, str], authorization: str
    ) -> tuple[int, dict[str, object]]:
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(encoded, validate=True).decode()
            except ValueError:
                pair = ""
            user, _, password = pair.partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        expected = self._config.clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        return self._issue()

    def _jwt_bearer(self, assertion: str, token_url: str) -> tuple[int, dict[str, object]]:
        try:
            key_id = jwt.get_unverified_header(assertion).get("kid", "")
        except jwt.InvalidTokenError:
            return 400, {"error": "invalid_grant", "error_description": "not a JWT"}
        key = self._config.jwt_keys.get(key_id)
        if key is None:
            return 400, {"error": "invalid_grant", "error_description": "unknown key id"}
        secret, issuer = key
        try:
            claims = jwt.decode(
                assertion,
                secret,
                algorithms=["HS256"],
                audience=token_url,
                issuer=issuer,
                options={"require": ["iss", "aud", "iat", "exp"]},
            )
        except jwt.InvalidTokenError as exc:
            return 400, {"error": "invalid_grant", "error_description": str(exc)}
        if claims["exp"] - claims["iat"] > _MAX_ASSERTION_SECONDS:
            return 400, {"error": "invalid_grant", "error_description": "exp over an hour"}
        return self._issue()

    def _issue(self) -> tuple[int, dict[str, object]]:
        token = secrets.token_urlsafe(24)
        lifetime = self._config.token_lifetime
        with self._lock:
            self._tokens[token] = time.monotonic() + lifetime
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
