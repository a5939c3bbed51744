"""The simulator's Obelisk, as Obelisk's schema and streaming service behave: the Catalog's
GraphQL (the documented example as it is written, validation errors, pages), and streams
that send only their fields, in their precision, one session at a time, from the
subscription's acknowledged position."""

from __future__ import annotations

import json

import pytest
import urllib3

from connectors.obelisk_catalog import ObeliskCatalog, ObeliskCatalogError
from connectors.simulator import (
    Faults,
    OAuth2Server,
    SensorSimulator,
    SequenceSpec,
    SimulatorConfig,
)
from connectors.simulator.obelisk import ObeliskConfig
from connectors.simulator.sequence import obelisk_event
from connectors.sse import Auth, ClientCredentials, subscribe
from tests.helpers.servers import StartSim

SEQUENCE = SequenceSpec(sensors=6, rate=100.0, datasets=2, format="obelisk", seed=2)
CLIENT = ("client-1", "secret-1")


def _sim(simulator: StartSim, *, end_after: int = 60, **obelisk: int) -> SensorSimulator:
    return simulator(
        SimulatorConfig(
            sequence=SEQUENCE,
            faults=Faults(end_after=end_after),
            pace=False,
            oauth2=OAuth2Server(clients=dict([CLIENT])),
            obelisk=ObeliskConfig(**obelisk),
        )
    )


def _tokens(sim: SensorSimulator) -> ClientCredentials:
    return ClientCredentials(sim.base_url + "/api/v3/auth/token", *CLIENT)


def test_the_documented_create_stream_example_runs_as_written(simulator: StartSim) -> None:
    sim = _sim(simulator)
    assert sim.catalog is not None
    # Obelisk's guide passes one dataset id as a string; GraphQL makes it a list.
    answer = sim.catalog.execute(
        {
            "query": 'mutation { createStream(input: { name: "DemoStream1" '
            'dataRange: {datasets: "sensorwax-demo-1"} }) '
            "{ responseCode message item { id fields timestampPrecision } } }"
        }
    )
    made = answer["data"]["createStream"]
    assert made["responseCode"] == "SUCCESS"
    # Obelisk's default fields: no timestamp.
    assert made["item"]["fields"] == ["metric", "source", "value"]
    assert made["item"]["timestampPrecision"] == "MILLISECONDS"
    wrong = sim.catalog.execute({"query": "{ me { activeStreams { items { colour } } } }"})
    assert "Cannot query field 'colour'" in wrong["errors"][0]["message"]


def test_the_client_pages_through_streams_and_names_graphql_errors(simulator: StartSim) -> None:
    sim = _sim(simulator, max_streams=30)
    catalog = ObeliskCatalog(sim.base_url, _tokens(sim))
    for i in range(27):
        catalog.create_stream(f"s{i:02d}", ["sensorwax-demo-0"])
    assert sim.catalog is not None
    first = sim.catalog.execute(
        {"query": "{ me { activeStreams(limit: 10) { items { name } cursor count } } }"}
    )["data"]["me"]["activeStreams"]
    assert (len(first["items"]), first["cursor"], first["count"]) == (10, "10", 27)
    assert [s.name for s in catalog.active_streams()] == [f"s{i:02d}" for i in range(27)]
    with pytest.raises(ObeliskCatalogError, match="Metric 'temperature' is not"):
        catalog.create_stream("bad", ["sensorwax-demo-0"], ["temperature"])


def _get(sim: SensorSimulator, path: str, **headers: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request(
        "GET", sim.base_url + path, headers=headers, preload_content=False, retries=False
    )


def test_a_stream_is_read_with_a_token_an_event_stream_accept_and_an_id_it_knows(
    simulator: StartSim,
) -> None:
    sim = _sim(simulator)
    catalog = ObeliskCatalog(sim.base_url, _tokens(sim))
    stream = catalog.create_stream("s", ["sensorwax-demo-0"])
    token = _tokens(sim).access_token().value
    path = f"/api/v3/data/streams/{stream.id}"
    assert _get(sim, path, Accept="text/event-stream").status == 401
    no_accept = _get(sim, path, Authorization=f"Bearer {token}")
    assert no_accept.status == 406
    assert "Accept: text/event-stream" in json.loads(no_accept.read())["error"]
    unknown = _get(sim, path + "x", Authorization=f"Bearer {token}", Accept="text/event-stream")
    assert unknown.status == 404


def test_a_stream_sends_its_fields_in_its_precision_and_heartbeats_that_are_not_events(
    simulator: StartSim,
) -> None:
    sim = _sim(simulator)
    assert sim.catalog is not None
    answer = sim.catalog.execute(
        {
            "query": 'mutation { createStream(input: {name: "s", dataRange: {datasets: '
            '["sensorwax-demo-1"], metrics: ["*::number"]}, fields: [timestamp, source, '
            "value], timestampPrecision: SECONDS}) { item { id } } }"
        }
    )
    stream_id = answer["data"]["createStream"]["item"]["id"]
    catalog = ObeliskCatalog(sim.base_url, _tokens(sim))
    events = list(subscribe(catalog.stream_url(stream_id), auth=Auth(token_provider=_tokens(sim))))
    wanted = [n for n in range(60) if obelisk_event(SEQUENCE, n)["dataset"] == "sensorwax-demo-1"]
    assert [json.loads(e.data) for e in events] == [
        {
            "timestamp": obelisk_event(SEQUENCE, n)["timestamp"] // 1000,
            "source": obelisk_event(SEQUENCE, n)["source"],
            "value": obelisk_event(SEQUENCE, n)["value"],
        }
        for n in wanted
    ]
    assert {e.id for e in events} == {""}  # no ids: Obelisk resumes by its subscription


def test_a_new_session_replaces_the_old_and_the_backlog_is_what_was_not_acknowledged(
    simulator: StartSim,
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SEQUENCE,
            faults=Faults(end_after=10_000),
            pace=True,
            oauth2=OAuth2Server(clients=dict([CLIENT])),
            obelisk=ObeliskConfig(ack_lag=5),
        )
    )
    catalog = ObeliskCatalog(sim.base_url, _tokens(sim))
    stream = catalog.create_stream("s", ["sensorwax-demo-0", "sensorwax-demo-1"])
    token = _tokens(sim).access_token().value
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    path = f"/api/v3/data/streams/{stream.id}?receiveBacklog=true"
    old = _get(sim, path, **headers)
    assert old.status == 200
    old_body = b""
    while old_body.count(b"data: ") < 20:
        old_body += old.read1(4096)
    assert sim.catalog is not None
    new = _get(sim, path, **headers)
    assert new.status == 200
    # The old session is told why it ends, and its body ends.
    rest = old.read()
    assert b"replaced with a new session" in rest
    new_body = b""
    while new_body.count(b"data: ") < 8:
        new_body += new.read1(4096)
    new.release_conn()
    old_events = [
        json.loads(line[6:])
        for line in (old_body + rest).splitlines()
        if line.startswith(b"data: ")
    ]
    new_events = [
        json.loads(line[6:]) for line in new_body.splitlines() if line.startswith(b"data: ")
    ]
    # receiveBacklog: the new session begins with the (five) events not yet acknowledged.
    again = old_events.index(new_events[0])
    assert len(old_events) - again >= 5
    assert new_events[:5] == old_events[again : again + 5]
    assert new_body.startswith(b":" + b" " * 512)
