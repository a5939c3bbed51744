"""``python -m dataflows.obelisk``: the Catalog's stream operations, for Obelisk accounts.

- ``create-stream``: registers a stream (name, datasets, optional metrics and filter) with
  the fields and timestamp precision the jobs read, and prints its id and the settings
  that read it with ``SSE_URL``.
- ``list-streams``: the account's active streams.
- ``remove-stream ID``: disconnects the stream's client and removes it (an account may
  have only a few streams).

It uses the jobs' settings: ``OBELISK_URL``, ``OBELISK_CLIENT_ID`` and
``OBELISK_CLIENT_SECRET`` (and ``OBELISK_STREAM``, ``OBELISK_DATASETS``,
``OBELISK_METRICS``, ``OBELISK_FILTER`` as the defaults of ``create-stream``), through
``SSE_PROXY`` and with ``SSE_CA_BUNDLE`` as the jobs do. Exit status: 0 done, 1 the
Obelisk refused (one line, with the Catalog's message), 2 a setting is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from connectors.obelisk_catalog import TOKEN_PATH, CatalogStream, ObeliskCatalog
from connectors.sse import SSEError
from dataflows.config import ObeliskSettings, load_obelisk_settings
from dataflows.obelisk_setup import catalog_of
from dataflows.runtime import settings

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataflows.obelisk",
        description="Obelisk's Catalog: register, list and remove data streams. Settings: "
        "OBELISK_URL, OBELISK_CLIENT_ID and OBELISK_CLIENT_SECRET (as the jobs read them).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "create-stream", help="register a stream (createStream) and print how to read it"
    )
    create.add_argument("--name", help="the stream's name (default: OBELISK_STREAM, sensorwax)")
    create.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="ID",
        help="a dataset to stream; repeat for several (default: OBELISK_DATASETS)",
    )
    create.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME::TYPE",
        help="a metric to stream; repeat for several (default: OBELISK_METRICS, *::number)",
    )
    create.add_argument(
        "--filter", help="Obelisk's filter expression, as JSON (default: OBELISK_FILTER)"
    )
    commands.add_parser("list-streams", help="the account's active streams (me.activeStreams)")
    remove = commands.add_parser(
        "remove-stream", help="disconnect and remove a stream (onStream.remove)"
    )
    remove.add_argument("id", help="the stream's id (list-streams shows it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    loaded: ObeliskSettings = settings(load_obelisk_settings)
    catalog = catalog_of(loaded.setup, loaded.stream)
    try:
        if args.command == "create-stream":
            return _create(args, loaded, catalog)
        if args.command == "list-streams":
            return _list(catalog)
        catalog.remove_stream(args.id)
        print(f"removed Obelisk stream {args.id}")
        return 0
    except SSEError as exc:  # the Catalog's refusal, the token endpoint's, the network's
        print(f"sensorwax: {exc}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace, loaded: ObeliskSettings, catalog: ObeliskCatalog) -> int:
    setup = loaded.setup
    datasets = args.datasets or list(setup.datasets)
    if not datasets:
        print(
            "sensorwax: create-stream needs a dataset: --dataset ID or OBELISK_DATASETS",
            file=sys.stderr,
        )
        return 2
    stream_filter: Any = setup.filter
    if args.filter is not None:
        try:
            stream_filter = json.loads(args.filter)
        except ValueError:
            print(f"sensorwax: --filter {args.filter!r} is not JSON", file=sys.stderr)
            return 2
    created = catalog.create_stream(
        args.name or setup.stream, datasets, args.metrics or list(setup.metrics), stream_filter
    )
    print(f"created Obelisk stream {created.id} ({created.name})")
    print("read it with python -m bytewax.run dataflows.sensor_stats and:")
    print(f"SSE_URL={catalog.stream_url(created.id)}")
    print("SSE_FORMAT=obelisk")
    print(f"SSE_OAUTH2_TOKEN_URL={setup.url}{TOKEN_PATH}")
    print(f"SSE_OAUTH2_CLIENT_ID={setup.client_id}")
    print("SSE_OAUTH2_CLIENT_SECRET=<the client's secret, as in OBELISK_CLIENT_SECRET>")
    print(f"(or leave SSE_URL unset and set OBELISK_STREAM={created.name}: the job finds it)")
    return 0


def _list(catalog: ObeliskCatalog) -> int:
    streams = catalog.active_streams()
    if not streams:
        print("no active Obelisk streams")
        return 0
    rows = [("ID", "NAME", "DATASETS", "METRICS", "CONNECTED")]
    rows += [_row(stream) for stream in streams]
    # Every column padded to its widest cell but the last.
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print("  ".join([*padded, row[-1]]))
    return 0


def _row(stream: CatalogStream) -> tuple[str, str, str, str, str]:
    return (
        stream.id,
        stream.name,
        ",".join(stream.datasets),
        ",".join(stream.metrics) or "all",
        "yes" if stream.client_connected else "no",
    )


if __name__ == "__main__":
    raise SystemExit(main())
