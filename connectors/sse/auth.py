"""Auth: how a request proves who it is, and which strings of it are secret.

``Auth.apply`` turns a stream URL and its headers into what is sent: an
``Authorization`` header (bearer, basic, or the access token of a ``TokenProvider``), a
token query parameter, or credentials taken from the URL's user info, together with every
secret the request now holds, for the redactor. It runs before every connect, so a
credential may change between connects.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from connectors.sse.tokens import AccessToken, TokenProvider

__all__ = ["Auth", "PreparedRequest"]

# Headers whose values are secrets whoever sets them.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})


@dataclass(frozen=True)
class PreparedRequest:
    """The URL and headers to send, and the secrets they hold."""

    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    token: AccessToken | None = None


@dataclass(frozen=True)
class Auth:
    """Credentials for a stream; none of them shows in a repr.

    - ``bearer_token``: ``Authorization: Bearer <token>``.
    - ``basic_auth``: ``(user, password)`` for ``Authorization: Basic``. A URL with
      ``user:password@`` gives the same when neither is set.
    - ``query_token``: appended to the URL as ``query_token_param=<token>`` (Disruptive
      Technologies' ``token=``), for servers that take no headers.
    - ``token_provider``: a ``TokenProvider`` (``ClientCredentials``, ``JWTBearer``, or
      your own) asked for a bearer token before every connect, for tokens that expire.
    """

    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    query_token: str | None = field(default=None, repr=False)
    query_token_param: str = "token"
    token_provider: TokenProvider | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        ways = {
            "a bearer token": self.bearer_token,
            "basic auth": self.basic_auth,
            "a token provider": self.token_provider,
        }
        given = [name for name, value in ways.items() if value]
        if len(given) > 1:
            both = "not both" if len(given) == 2 else "not all three"
            raise ValueError(f"{' and '.join(given)} given: pass one, {both}")
        if not self.query_token_param:
            raise ValueError("query_token_param must not be empty")

    @property
    def kind(self) -> str:
        """What the request carries, for reprs and logs: never the credential itself."""
        header = (
            "bearer"
            if self.bearer_token
            else "basic"
            if self.basic_auth
            else "oauth2"
            if self.token_provider
            else None
        )
        if header is None:
            return "query token" if self.query_token else "none"
        return header

    def apply(
        self, url: str, headers: Mapping[str, str], token: AccessToken | None = None
    ) -> PreparedRequest:
        """``url`` and ``headers`` with the credentials added, and every secret in them;
        ``token`` is the provider's access token for this connect, if it has one."""
        parts = urlsplit(url)
        basic_auth = self.basic_auth
        if parts.username is not None:
            if basic_auth is None and not self.bearer_token and not self.token_provider:
                basic_auth = (parts.username, parts.password or "")
            # urllib3 would send user info as it is; it goes in the header or nowhere.
            host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
            parts = parts._replace(netloc=host)
        sent = dict(headers)
        secrets = [value for name, value in headers.items() if name.lower() in _SECRET_HEADERS]
        if self.bearer_token:
            sent["Authorization"] = f"Bearer {self.bearer_token}"
            secrets.append(self.bearer_token)
        elif self.token_provider:
            secrets += self.token_provider.secrets()
            if token is not None:
                sent["Authorization"] = f"Bearer {token.value}"
                secrets.append(token.value)
        elif basic_auth:
            user, password = basic_auth
            encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            sent["Authorization"] = f"Basic {encoded}"
            secrets += [password, encoded]
        if self.query_token:
            query = parts.query + ("&" if parts.query else "")
            param = urlencode({self.query_token_param: self.query_token})
            parts = parts._replace(query=query + param)
            secrets.append(self.query_token)
        return PreparedRequest(urlunsplit(parts), sent, tuple(s for s in secrets if s), token)
