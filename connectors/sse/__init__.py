"""The public SSE surface: events, the parser entry point, subscribe and its settings, errors."""

from connectors.sse.auth import Auth
from connectors.sse.client import Subscription, SubscriptionStats, subscribe
from connectors.sse.errors import (
    SSEConnectionError,
    SSEContentTypeError,
    SSEError,
    SSEHTTPError,
    SSERetryExhausted,
)
from connectors.sse.options import ConnectOptions
from connectors.sse.parser import DEFAULT_MAX_EVENT_BYTES, OversizedEvent, SSEEvent, iter_events
from connectors.sse.retry import RetryPolicy

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "Auth",
    "ConnectOptions",
    "OversizedEvent",
    "RetryPolicy",
    "SSEConnectionError",
    "SSEContentTypeError",
    "SSEError",
    "SSEEvent",
    "SSEHTTPError",
    "SSERetryExhausted",
    "Subscription",
    "SubscriptionStats",
    "iter_events",
    "subscribe",
]
