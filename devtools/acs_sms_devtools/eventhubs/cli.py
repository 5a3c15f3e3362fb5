"""``acs-sms-consumer emulator``: run the local Event Hubs endpoint in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .hub import EventHub
from .server import EventHubsServer

__all__ = ["main", "build_parser"]


def build_parser(prog: str = "acs-sms-consumer emulator") -> argparse.ArgumentParser:
    """Argument parser of the ``emulator`` command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local Event Hubs endpoint (AMQP 1.0, no TLS) for development and tests. "
        "Events are kept in memory only.",
        epilog="exit status:\n  0  stopped by Ctrl-C or SIGTERM\n  1  cannot listen on --host:--port (e.g. the port is taken)\n"
               "  2  the arguments are wrong",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5672, help="TCP port, 0 for a free one (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=4, help="number of partitions (default: %(default)s)")
    parser.add_argument("--hub", default="eventhub", help="Event Hub name (default: %(default)s)")
    parser.add_argument(
        "--consumer-group",
        action="append",
        default=[],
        metavar="NAME",
        help="extra consumer group (repeatable; $Default always exists)",
    )
    parser.add_argument("--sas-key", default=None, metavar="KEY",
                        help="require SAS tokens signed with this key, as the service does (default: accept any key)")
    parser.add_argument(
        "--max-events-per-partition",
        type=int,
        default=100_000,
        help="retention cap per partition, oldest dropped (default: %(default)s)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    hub = EventHub(args.hub, args.partitions, tuple(args.consumer_group), args.max_events_per_partition)
    server = EventHubsServer(hub, args.host, args.port, sas_key=args.sas_key)
    await server.start()
    print(
        f"Event Hubs endpoint for hub '{hub.name}' ({hub.partition_count} partitions, consumer groups: "
        f"{', '.join(hub.consumer_groups)}) listening on {server.host}:{server.port}",
        flush=True,
    )
    print(
        "Connection string: "
        f"Endpoint=sb://{server.host}:{server.port};SharedAccessKeyName=k;SharedAccessKey={args.sas_key or 'v'};"
        f"EntityPath={hub.name};UseDevelopmentEmulator=true",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    try:
        await stop.wait()
    finally:
        await server.stop()
        print("Event Hubs endpoint stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the endpoint until Ctrl-C / SIGTERM. Returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
