"""Forward proxies: which one a request takes (curl's rules for the environment, or
``proxy``/``SSE_PROXY``), and streams through a real proxy process (proxy.py, with basic
auth): http with drops, https through a CONNECT tunnel, tokens, credentials never shown."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from connectors.obelisk_catalog import TOKEN_PATH, ObeliskCatalog, ObeliskCatalogError
from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from connectors.simulator.obelisk import ObeliskConfig
from connectors.sse import ClientCredentials, ConnectOptions, SSEHTTPError, subscribe
from connectors.sse.proxy import Proxy, bypassed, proxy_for
from tests.helpers.servers import PROXY_PASSWORD as PASSWORD
from tests.helpers.servers import (
    ScriptedServer,
    StartScripted,
    StartSim,
    Step,
    free_port,
    sse_head,
    status_head,
    tls_context,
)
from tests.helpers.streams import FAST_RETRY

HTTPS = "https://stream.example.com/sse"
HTTP = "http://stream.example.com/sse"


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        (HTTPS, {}, None),
        (HTTPS, {"https_proxy": "http://p:1"}, "http://p:1"),
        (HTTPS, {"HTTPS_PROXY": "http://p:2"}, "http://p:2"),
        (HTTPS, {"https_proxy": "http://p:1", "HTTPS_PROXY": "http://p:2"}, "http://p:1"),
        (HTTPS, {"http_proxy": "http://p:3"}, None),  # the other scheme's
        (HTTP, {"http_proxy": "http://p:3"}, "http://p:3"),
        (HTTP, {"HTTP_PROXY": "http://p:4"}, None),  # httpoxy: never upper case
        (HTTP, {"all_proxy": "p:5"}, "http://p:5"),
        (HTTPS, {"ALL_PROXY": "http://p:6"}, "http://p:6"),
        (HTTPS, {"https_proxy": "http://p:1", "no_proxy": "example.com"}, None),
        (HTTPS, {"https_proxy": "http://p:1", "NO_PROXY": ".example.com"}, None),
        (HTTPS, {"https_proxy": "http://p:1", "no_proxy": "ample.com"}, "http://p:1"),
        (HTTPS, {"https_proxy": "http://p:1", "no_proxy": "other.org, *"}, None),
        ("https://10.1.2.3/s", {"https_proxy": "http://p:1", "no_proxy": "10.0.0.0/8"}, None),
        ("https://10.1.2.3/s", {"https_proxy": "http://p:1", "no_proxy": "10.1.2.4"}, "http://p:1"),
        ("http://[::1]:8/s", {"http_proxy": "http://p:1", "no_proxy": "::1"}, None),
    ],
)
def test_the_proxy_a_url_takes_follows_curls_rules(
    url: str, environ: dict[str, str], expected: str | None
) -> None:
    found = proxy_for(url, None, environ)
    assert (found.url if found else None) == expected


def test_an_explicit_proxy_wins_but_no_proxy_still_applies() -> None:
    environ = {"https_proxy": "http://env:1", "no_proxy": "internal.example"}
    assert proxy_for(HTTPS, "http://mine:2", environ) == Proxy("http://mine:2")
    assert proxy_for("https://a.internal.example/s", "http://mine:2", environ) is None
    assert bypassed("A.Internal.Example.", "internal.example")


def test_proxy_credentials_are_kept_apart_and_out_of_reprs() -> None:
    proxy = Proxy.parse(f"http://me%40corp:{PASSWORD}@proxy.corp:3128")
    assert (proxy.url, proxy.username, proxy.password) == (
        "http://proxy.corp:3128",
        "me@corp",
        PASSWORD,
    )
    assert PASSWORD not in repr(proxy) and proxy.secrets() == (PASSWORD,)
    with pytest.raises(ValueError, match="http://host:port"):
        Proxy.parse("socks5://proxy.corp:1080")


def test_a_stream_with_drops_through_the_proxy_is_the_direct_stream(
    simulator: StartSim, forward_proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = SimulatorConfig(
        sequence=SequenceSpec(sensors=4, rate=400),
        faults=Faults(end_after=120, drop_every=50, drop_mid_event=True),
    )
    direct = [(e.id, e.data) for e in subscribe(simulator(config).url, retry=FAST_RETRY)]
    sim = simulator(config)
    options = ConnectOptions(proxy=f"http://tester:{PASSWORD}@{forward_proxy}")
    with caplog.at_level(logging.DEBUG):
        proxied = [(e.id, e.data) for e in subscribe(sim.url, options=options, retry=FAST_RETRY)]
    assert proxied == direct and len(direct) == 120
    assert sum(1 for r in sim.requests if r.status == 200) == 3
    assert f"through the proxy http://{forward_proxy}" in caplog.text
    assert PASSWORD not in caplog.text


def test_wrong_proxy_credentials_stop_with_one_line_and_no_secret(
    simulator: StartSim, forward_proxy: str
) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=5)))
    options = ConnectOptions(proxy=f"http://tester:not-{PASSWORD}@{forward_proxy}")
    with pytest.raises(SSEHTTPError) as caught:
        list(subscribe(sim.url, options=options, retry=FAST_RETRY))
    assert caught.value.status == 407
    assert "proxy wants credentials" in str(caught.value)
    assert PASSWORD not in str(caught.value) and sim.requests == []


def test_the_environment_proxy_and_no_proxy(
    simulator: StartSim, forward_proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=5)))
    # A proxy that refuses (wrong password) proves the request went to it.
    monkeypatch.setenv("http_proxy", f"http://tester:nope@{forward_proxy}")
    with pytest.raises(SSEHTTPError, match="407"):
        list(subscribe(sim.url, retry=FAST_RETRY))
    with pytest.raises(SSEHTTPError, match="407"):  # an explicit proxy is not needed for it
        list(subscribe(sim.url, options=ConnectOptions(trust_env=True), retry=FAST_RETRY))
    assert len(list(subscribe(sim.url, options=ConnectOptions(trust_env=False)))) == 5
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    assert len(list(subscribe(sim.url, retry=FAST_RETRY))) == 5


def test_https_goes_through_a_connect_tunnel_with_the_servers_own_certificate(
    scripted: StartScripted, ca: trustme.CA, forward_proxy: str, tmp_path: Path
) -> None:
    cut = sse_head() + b"id: 1\ndata: one\n\nid: 2\ndata: tw"
    server: ScriptedServer = scripted(
        [
            [Step(cut)],
            [Step(sse_head() + b"id: 2\ndata: two\n\n")],
            [Step(status_head(204))],
        ],
        tls_context(ca),
    )
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    options = ConnectOptions(
        proxy=f"http://tester:{PASSWORD}@{forward_proxy}", ca_certs=str(bundle)
    )
    events = list(subscribe(server.url, options=options, retry=FAST_RETRY))
    assert [(e.id, e.data) for e in events] == [("1", "one"), ("2", "two")]
    # TLS ran end to end: the server saw the stream's own request, with the resume id.
    assert server.request_lines[0].startswith("GET /stream ")
    assert server.requests[1]["last-event-id"] == "1"


def test_tokens_are_fetched_through_the_same_proxy(simulator: StartSim, forward_proxy: str) -> None:
    sim = simulator(
        SimulatorConfig(
            faults=Faults(end_after=5), oauth2=OAuth2Server(clients={"cid": "cs-Proxy-1"})
        )
    )
    good = f"http://tester:{PASSWORD}@{forward_proxy}"
    provider = ClientCredentials(sim.token_url, "cid", "cs-Proxy-1", proxy=good)
    assert provider.proxy == Proxy.parse(good) and PASSWORD in provider.secrets()
    events = list(subscribe(sim.url, token_provider=provider, options=ConnectOptions(proxy=good)))
    assert len(events) == 5
    assert sim.tokens is not None and len(sim.tokens.requests) == 1
    refused = ClientCredentials(
        sim.token_url, "cid", "cs-Proxy-1", proxy=f"http://x:y@{forward_proxy}"
    )
    with pytest.raises(Exception) as caught:
        refused.access_token()
    assert "407" in str(caught.value) and len(sim.tokens.requests) == 1


def test_obelisks_catalog_is_asked_through_the_same_proxy(
    simulator: StartSim, forward_proxy: str
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(format="obelisk"),
            oauth2=OAuth2Server(clients={"cid": "cs-Proxy-2"}),
            obelisk=ObeliskConfig(),
        )
    )
    good = f"http://tester:{PASSWORD}@{forward_proxy}"
    provider = ClientCredentials(sim.base_url + TOKEN_PATH, "cid", "cs-Proxy-2", proxy=good)
    catalog = ObeliskCatalog(sim.base_url, provider, proxy=good)
    made = catalog.create_stream("through", ["sensorwax-demo"])
    assert [s.id for s in catalog.active_streams()] == [made.id]
    wrong = ObeliskCatalog(sim.base_url, provider, proxy=f"http://x:y@{forward_proxy}")
    with pytest.raises(ObeliskCatalogError) as caught:
        wrong.active_streams()
    assert "407" in str(caught.value) and PASSWORD not in str(caught.value)


def test_nothing_listens_where_the_proxy_is_said_to_be(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=5)))
    options = ConnectOptions(proxy=f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    retry = replace(FAST_RETRY, max_attempts=2)
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        list(subscribe(sim.url, options=options, retry=retry))
    assert sim.requests == []
