"""Token providers against the simulator's OAuth2 endpoint: both grants, renewal, refusal,
an endpoint that is down, 401 on the stream, and streams that end when their token does."""

from __future__ import annotations

import logging
import time

import jwt
import pytest

from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from connectors.sse import (
    AccessToken,
    ClientCredentials,
    JWTBearer,
    SSEHTTPError,
    SSETokenError,
    subscribe,
)
from connectors.sse.tokens import TokenEndpointUnavailable
from tests.helpers.secrets import assert_clean
from tests.helpers.servers import StartSim
from tests.helpers.streams import FAST_RETRY, ids_of

CLIENT_SECRET = "cs-5e1f0a9b3d7c"
JWT_SECRET = "jwt-8c2d4e6f0a1b9e3d5c7a2f4b6d8e0c1a3f5"
ISSUER = "sensorwax@project.serviceaccount.example"


def oauth2(lifetime: float = 3600.0, unavailable: tuple[int, ...] = ()) -> OAuth2Server:
    return OAuth2Server(
        clients={"sensorwax": CLIENT_SECRET},
        jwt_keys={"key-1": (JWT_SECRET, ISSUER)},
        token_lifetime=lifetime,
        unavailable=unavailable,
    )


def served(events: int = 20, lifetime: float = 3600.0, **kwargs: object) -> SimulatorConfig:
    return SimulatorConfig(
        sequence=SequenceSpec(sensors=3),
        faults=Faults(end_after=events),
        pace=False,
        oauth2=oauth2(lifetime, **kwargs),  # type: ignore[arg-type]
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_client_credentials_are_sent_with_basic_and_the_token_reused_until_renewal(
    simulator: StartSim,
) -> None:
    sim = simulator(served(lifetime=100))
    clock = Clock()
    provider = ClientCredentials(sim.token_url, "sensorwax", CLIENT_SECRET, clock=clock)
    first = provider.access_token()
    assert first.fetched_at == 1000.0 and first.renew_at == 1090.0  # 10% before expiry
    clock.now = 1089.9
    assert provider.access_token() is first
    clock.now = 1090.0
    second = provider.access_token()
    assert second.value != first.value
    assert provider.access_token(fresh=True).value not in (first.value, second.value)
    assert [r.grant for r in sim.tokens.requests] == ["client_credentials"] * 3  # type: ignore[union-attr]
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in sim.requests)


def test_the_jwt_bearer_assertion_carries_the_claims_the_vendor_checks(
    simulator: StartSim,
) -> None:
    sim = simulator(served())
    provider = JWTBearer(sim.token_url, "key-1", ISSUER, JWT_SECRET)
    token = provider.access_token()
    assert token.value in sim.tokens.issued  # type: ignore[union-attr]
    (assertion,) = [s for s in provider.secrets() if s.count(".") == 2]
    assert jwt.get_unverified_header(assertion) == {"alg": "HS256", "kid": "key-1", "typ": "JWT"}
    claims = jwt.decode(assertion, JWT_SECRET, algorithms=["HS256"], audience=sim.token_url)
    assert claims["iss"] == ISSUER
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize("grant", ["client_credentials", "jwt_bearer"])
def test_refused_credentials_are_fatal_with_the_reason_and_no_secret(
    simulator: StartSim, grant: str
) -> None:
    sim = simulator(served())
    provider = (
        ClientCredentials(sim.token_url, "sensorwax", CLIENT_SECRET + "-x")
        if grant == "client_credentials"
        else JWTBearer(sim.token_url, "key-1", ISSUER, JWT_SECRET + "-x")
    )
    sub = subscribe(sim.url, token_provider=provider, retry=FAST_RETRY)
    with pytest.raises(SSETokenError) as raised:
        list(sub)
    message = str(raised.value)
    reason = "invalid_client" if grant == "client_credentials" else "invalid_grant"
    assert f"token endpoint {sim.token_url} refused the credentials" in message
    assert reason in message
    assert_clean(message + repr(sub) + repr(provider), [CLIENT_SECRET, JWT_SECRET])
    assert [r.path for r in sim.requests] == ["/oauth2/token"]  # the stream was never asked


def test_a_token_endpoint_that_is_down_is_retried_with_the_backoff(
    simulator: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    sim = simulator(served(unavailable=(503, 502)))
    provider = ClientCredentials(sim.token_url, "sensorwax", CLIENT_SECRET)
    sub = subscribe(sim.url, token_provider=provider, retry=FAST_RETRY)
    assert ids_of(list(sub)) == list(range(20))
    assert [r.status for r in sim.tokens.requests] == [503, 502, 200]  # type: ignore[union-attr]
    assert "(attempt 1): token endpoint" in caplog.text
    assert "(attempt 2): token endpoint" in caplog.text


def test_an_unreachable_token_endpoint_is_not_fatal() -> None:
    provider = ClientCredentials("http://127.0.0.1:9/oauth2/token", "sensorwax", CLIENT_SECRET)
    with pytest.raises(TokenEndpointUnavailable):
        provider.access_token()


class _StaleFirst:
    """Hands out a token the server never issued, as if fetched long ago, then real ones."""

    def __init__(self, real: ClientCredentials) -> None:
        self.real = real
        self.asked: list[bool] = []

    def access_token(self, *, fresh: bool = False) -> AccessToken:
        self.asked.append(fresh)
        if len(self.asked) == 1:
            return AccessToken("expired-elsewhere", fetched_at=0.0)
        return self.real.access_token(fresh=fresh)

    def secrets(self) -> tuple[str, ...]:
        return self.real.secrets()


def test_a_401_with_an_older_token_fetches_one_fresh_token_at_once(simulator: StartSim) -> None:
    sim = simulator(served())
    provider = _StaleFirst(ClientCredentials(sim.token_url, "sensorwax", CLIENT_SECRET))
    # A backoff of a minute would show: the retry after a 401 does not wait.
    slow = FAST_RETRY.__class__(initial_delay=60, max_delay=60, jitter=0.0)
    started = time.monotonic()
    sub = subscribe(sim.url, token_provider=provider, retry=slow)
    events = []
    for event in sub:
        events.append(event)
        if len(events) == 20:
            sub.close()
    assert ids_of(events) == list(range(20))
    assert provider.asked[:2] == [False, True]
    assert [r.status for r in sim.requests if r.path == "/stream"][:2] == [401, 200]
    assert time.monotonic() - started < 30


class _AlwaysWrong:
    def access_token(self, *, fresh: bool = False) -> AccessToken:
        return AccessToken("never-issued", fetched_at=time.monotonic())

    def secrets(self) -> tuple[str, ...]:
        return ()


def test_a_401_with_a_token_fetched_just_now_is_fatal(simulator: StartSim) -> None:
    sim = simulator(served())
    with pytest.raises(SSEHTTPError, match="refused a token fetched just now") as raised:
        list(subscribe(sim.url, token_provider=_AlwaysWrong(), retry=FAST_RETRY))
    assert raised.value.status == 401
    assert "never-issued" not in str(raised.value)


@pytest.mark.parametrize("grant", ["client_credentials", "jwt_bearer"])
def test_streams_end_with_their_tokens_and_resume_with_new_ones(
    simulator: StartSim, grant: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    # Tokens live 0.6 s; 60 events paced over 3 s: the server ends each stream when its
    # token expires, and the subscription resumes with a new token, nothing lost.
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=3, rate=20),
            faults=Faults(end_after=60, drop_every=25),
            oauth2=oauth2(lifetime=0.6),
        )
    )
    provider = (
        ClientCredentials(sim.token_url, "sensorwax", CLIENT_SECRET)
        if grant == "client_credentials"
        else JWTBearer(sim.token_url, "key-1", ISSUER, JWT_SECRET)
    )
    sub = subscribe(sim.url, token_provider=provider, retry=FAST_RETRY)
    assert ids_of(list(sub)) == list(range(60))
    streams = [r for r in sim.requests if r.path == "/stream"]
    assert len(streams) >= 6
    # Every token came from a connect that needed one: no more fetches than connects.
    assert provider.fetches == sub.stats.token_fetches <= len(streams)
    tokens = sim.tokens.issued  # type: ignore[union-attr]
    assert len(tokens) == provider.fetches
    assert_clean(debug_logs.text + repr(sub), [CLIENT_SECRET, JWT_SECRET, *tokens])
