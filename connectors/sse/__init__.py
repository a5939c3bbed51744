"""The public SSE surface: events, the parser entry point, subscribe and its settings, errors."""

from connectors.sse.auth import Auth
from connectors.sse.client import Reconnect, Subscription, SubscriptionStats, subscribe
from connectors.sse.errors import (
    SSEConnectionError,
    SSEContentEncodingError,
    SSEContentTypeError,
    SSEError,
    SSEHTTPError,
    SSERetryExhausted,
    SSETokenError,
)
from connectors.sse.options import ConnectOptions
from connectors.sse.parser import (
    DEFAULT_MAX_EVENT_BYTES,
    DecodedEvent,
    OversizedEvent,
    SSEEvent,
    iter_events,
)
from connectors.sse.remote import RemoteSubscription
from connectors.sse.retry import RetryPolicy
from connectors.sse.tokens import AccessToken, ClientCredentials, JWTBearer, TokenProvider

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "AccessToken",
    "Auth",
    "ClientCredentials",
    "ConnectOptions",
    "DecodedEvent",
    "JWTBearer",
    "OversizedEvent",
    "Reconnect",
    "RemoteSubscription",
    "RetryPolicy",
    "SSEConnectionError",
    "SSEContentEncodingError",
    "SSEContentTypeError",
    "SSEError",
    "SSEEvent",
    "SSEHTTPError",
    "SSERetryExhausted",
    "SSETokenError",
    "Subscription",
    "SubscriptionStats",
    "TokenProvider",
    "iter_events",
    "subscribe",
]
