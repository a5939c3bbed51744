"""``python -m connectors.simulator``: serve simulated sensors on 127.0.0.1 until Ctrl+C."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from typing import Literal

from connectors.simulator.oauth2 import OAuth2Server
from connectors.simulator.obelisk import ObeliskConfig
from connectors.simulator.sequence import SequenceSpec
from connectors.simulator.server import Faults, SensorSimulator, SimulatorConfig
from connectors.vendors import VENDOR_FORMATS


def _statuses(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected statuses like 503,408, got {text!r}") from None


def _client(text: str) -> tuple[str, str]:
    client_id, colon, secret = text.partition(":")
    if not colon or not client_id or not secret:
        raise argparse.ArgumentTypeError(f"expected CLIENT_ID:SECRET, got {text!r}")
    return client_id, secret


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m connectors.simulator",
        description="Serve simulated sensor readings as Server-Sent Events on 127.0.0.1.",
    )
    p.add_argument("--port", type=int, default=8000, help="port (0: any free one)")
    p.add_argument("--sensors", type=int, default=20)
    p.add_argument("--rate", type=float, default=50.0, help="events per second")
    p.add_argument("--format", choices=VENDOR_FORMATS, default="flat")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sensor-offset", type=int, default=0, help="number of the first sensor")
    p.add_argument(
        "--start-ms", type=int, default=None, help="event time of event 0 (default: now)"
    )
    p.add_argument("--disorder-ms", type=int, default=0, help="event-time jitter, ms")
    p.add_argument(
        "--dt-events",
        choices=["readings", "every"],
        default="readings",
        help="dt: temperature, humidity and CO2 sensors, or every DT event type",
    )
    p.add_argument("--samples", type=int, default=0, help="dt: samples a temperature event")
    p.add_argument("--backfill-every", type=int, default=0, help="dt: every Nth is backfilled")
    p.add_argument("--unpaced", action="store_true", help="write as fast as the client reads")
    p.add_argument("--ping-interval", type=float, default=5.0, help="seconds between pings")
    p.add_argument("--read-to-close", action="store_true", help="no chunked encoding")
    p.add_argument("--ndjson", action="store_true", help="newline-delimited JSON, not SSE")
    p.add_argument("--retry-ms", type=int, default=None, help="send a retry: field")
    p.add_argument("--line-end", choices=["lf", "crlf", "cr"], default="lf", help="SSE line end")
    p.add_argument("--bom", action="store_true", help="start each body with a UTF-8 BOM")
    o = p.add_argument_group("Obelisk")
    o.add_argument(
        "--obelisk",
        type=_client,
        metavar="CLIENT_ID:SECRET",
        help="be an Obelisk: its Catalog (GraphQL), its streams and its token endpoint, "
        "for this client (implies --format obelisk)",
    )
    o.add_argument("--datasets", type=int, default=1, help="sensors spread over N datasets")
    o.add_argument("--max-streams", type=int, default=3, help="streams an account may have")
    o.add_argument(
        "--ack-lag", type=int, default=0, help="acknowledgements trail the sent events by N"
    )
    g = p.add_argument_group("faults")
    g.add_argument("--drop-every", type=int, default=0, help="close after N events")
    g.add_argument("--drop-mid-event", action="store_true", help="...halfway through an event")
    g.add_argument(
        "--statuses", type=_statuses, default=(), help="e.g. 503,408 for the first connections"
    )
    g.add_argument("--retry-after", type=float, default=None, help="Retry-After on those")
    g.add_argument("--stall-after", type=int, default=None, help="go silent after N events")
    g.add_argument("--stall-seconds", type=float, default=30.0)
    g.add_argument("--malformed-every", type=int, default=0, help="every Nth event is bad JSON")
    g.add_argument("--invalid-utf8-every", type=int, default=0, help="a Latin-1 byte in a note")
    g.add_argument("--oversized-every", type=int, default=0, help="pad every Nth event")
    g.add_argument("--oversized-bytes", type=int, default=4096, help="...with this many bytes")
    g.add_argument("--trickle", type=float, default=0.0, help="seconds between single bytes")
    g.add_argument("--end-after", type=int, default=None, help="end after N events (then 204)")
    return p


_LINE_ENDS: dict[str, Literal["\n", "\r\n", "\r"]] = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    start_ms = args.start_ms if args.start_ms is not None else int(time.time()) * 1000
    sequence = SequenceSpec(
        sensors=args.sensors,
        rate=args.rate,
        seed=args.seed,
        start_ms=start_ms,
        format="obelisk" if args.obelisk else args.format,
        datasets=args.datasets,
        disorder_ms=args.disorder_ms,
        sensor_offset=args.sensor_offset,
        dt_events=args.dt_events,
        samples=args.samples,
        backfill_every=args.backfill_every,
    )
    faults = Faults(
        drop_every=args.drop_every,
        drop_mid_event=args.drop_mid_event,
        statuses=args.statuses,
        retry_after=args.retry_after,
        stall_after=args.stall_after,
        stall_seconds=args.stall_seconds,
        malformed_every=args.malformed_every,
        invalid_utf8_every=args.invalid_utf8_every,
        oversized_every=args.oversized_every,
        oversized_bytes=args.oversized_bytes,
        trickle_seconds=args.trickle,
        end_after=args.end_after,
    )
    return SimulatorConfig(
        sequence=sequence,
        faults=faults,
        port=args.port,
        pace=not args.unpaced,
        ping_interval=args.ping_interval,
        chunked=not args.read_to_close,
        retry_ms=args.retry_ms,
        body="ndjson" if args.ndjson else "sse",
        line_end=_LINE_ENDS[args.line_end],
        bom=args.bom,
        oauth2=OAuth2Server(clients=dict([args.obelisk])) if args.obelisk else None,
        obelisk=ObeliskConfig(max_streams=args.max_streams, ack_lag=args.ack_lag)
        if args.obelisk
        else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with SensorSimulator(config) as sim:
        if config.obelisk is not None:
            print(f"serving an Obelisk at {sim.base_url} (OBELISK_URL)", flush=True)
        else:
            print(f"serving {config.sequence.sensors} sensors at {sim.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
