"""TLS verification, and secrets: none of the four ways of passing one ever leaks."""

from __future__ import annotations

import string
import traceback
from pathlib import Path

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from connectors.sse import SSEConnectionError, SSEError, SSEHTTPError, subscribe
from connectors.sse.redact import Redactor
from tests.helpers.secrets import PASSWORD, SECRET, WAYS, assert_clean
from tests.helpers.servers import (
    ScriptedServer,
    StartScripted,
    StartSim,
    Step,
    sse_head,
    status_head,
    tls_context,
)
from tests.helpers.streams import FAST_RETRY


@pytest.fixture
def tls_server(ca: trustme.CA, scripted: StartScripted) -> ScriptedServer:
    return scripted(
        [[Step(sse_head() + b"id: 1\ndata: secure\n\n")], [Step(status_head(204))]], tls_context(ca)
    )


def test_a_self_signed_certificate_is_refused_by_default(tls_server: ScriptedServer) -> None:
    with pytest.raises(SSEConnectionError, match=r"TLS failed.*ca_certs"):
        list(subscribe(tls_server.url, retry=FAST_RETRY))


def test_the_ca_bundle_option_accepts_it(
    tls_server: ScriptedServer, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    events = list(subscribe(tls_server.url, ca_certs=str(bundle), retry=FAST_RETRY))
    assert [e.data for e in events] == ["secure"]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_can_be_turned_off(tls_server: ScriptedServer) -> None:
    events = list(subscribe(tls_server.url, verify=False, retry=FAST_RETRY))
    assert [e.data for e in events] == ["secure"]


# -- secrets -------------------------------------------------------------------------
@pytest.mark.parametrize("way", WAYS)
def test_secrets_never_reach_logs_errors_or_reprs(
    way: str, simulator: StartSim, debug_logs: pytest.LogCaptureFixture
) -> None:
    good, bad, required, secrets = WAYS[way]
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=3),
            faults=Faults(drop_every=4, drop_mid_event=True, statuses=(503,), end_after=10),
            pace=False,
            **required,  # type: ignore[arg-type]
        )
    )
    # Right credentials, through a 503 and mid-event drops: every reconnect is logged.
    sub = subscribe(sim.url, retry=FAST_RETRY, **good)  # type: ignore[arg-type]
    events = list(sub)
    assert [e.id for e in events] == [str(n) for n in range(10)]
    assert_clean(repr(sub), secrets)
    # Wrong credentials: a fatal 401.
    wrong = subscribe(sim.url, retry=FAST_RETRY, **bad)  # type: ignore[arg-type]
    with pytest.raises(SSEHTTPError) as raised:
        list(wrong)
    assert raised.value.status == 401
    assert_clean(str(raised.value), secrets)
    assert_clean(repr(wrong), secrets)
    assert_clean(debug_logs.text, secrets)
    assert "reconnecting" in debug_logs.text
    assert "GET /stream" in debug_logs.text  # urllib3's own request line was captured


def test_a_password_in_the_url_is_used_and_redacted(
    simulator: StartSim, debug_logs: pytest.LogCaptureFixture
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=3),
            faults=Faults(end_after=3),
            pace=False,
            basic_auth=("ada", PASSWORD),
        )
    )
    url = sim.url.replace("http://", f"http://ada:{PASSWORD}@")
    sub = subscribe(url, retry=FAST_RETRY)
    assert len(list(sub)) == 3
    assert "ada:***@" not in sub.url  # the credentials moved to a header
    assert_clean(repr(sub) + debug_logs.text, [PASSWORD])


@pytest.mark.parametrize("tls", [False, True], ids=["http-403", "tls-failure"])
def test_tracebacks_hold_no_secret(scripted: StartScripted, ca: trustme.CA, tls: bool) -> None:
    server = scripted([[Step(status_head(403))]], tls_context(ca) if tls else None)
    with pytest.raises(SSEError) as raised:
        list(subscribe(server.url, query_token=SECRET))
    # What a user sees when the job dies: the whole printed traceback, chained causes too.
    printed = "".join(traceback.format_exception(raised.value))
    assert "token=***" in printed
    assert_clean(printed, [SECRET])


@given(st.text(alphabet=string.ascii_letters + string.digits + "-._~:%+/=", min_size=1))
def test_a_token_in_a_message_is_masked_and_the_message_keeps_its_colon(value: str) -> None:
    url = "https://api.example.com/stream"
    masked = Redactor().text(f"{url}?token={value}: HTTP 401 Unauthorized")
    # The value goes whole, its own colons too; the message's colon stays.
    assert masked == f"{url}?token=***: HTTP 401 Unauthorized"
