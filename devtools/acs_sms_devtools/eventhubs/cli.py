"""``acs-sms-consumer emulator``: run the local Event Hubs endpoint in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from .hub import EventHub
from ..tls import server_context
from .server import EventHubsServer

__all__ = ["main", "build_parser"]


def build_parser(prog: str = "acs-sms-consumer emulator") -> argparse.ArgumentParser:
    """Argument parser of the ``emulator`` command."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local Event Hubs endpoint (AMQP 1.0 over TCP without TLS; optionally also over WebSocket, with "
        "TLS) for development and tests. "
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
    parser.add_argument("--websocket-port", type=int, default=None, metavar="PORT",
                        help="also serve AMQP over WebSocket (/$servicebus/websocket, as Event Hubs on 443) on this "
                             "port, 0 for a free one (default: no WebSocket listener)")
    parser.add_argument("--tls-cert", default=None, metavar="PEM",
                        help="server certificate for the WebSocket listener (wss://; with --tls-key). "
                             "Without it the listener speaks ws://")
    parser.add_argument("--tls-key", default=None, metavar="PEM", help="private key of --tls-cert")
    parser.add_argument(
        "--max-events-per-partition",
        type=int,
        default=100_000,
        help="retention cap per partition, oldest dropped (default: %(default)s)",
    )
    return parser


async def _serve(args: argparse.Namespace) -> None:
    hub = EventHub(args.hub, args.partitions, tuple(args.consumer_group), args.max_events_per_partition)
    server = EventHubsServer(hub, args.host, args.port, sas_key=args.sas_key, websocket_port=args.websocket_port,
                             websocket_ssl=server_context(args.tls_cert, args.tls_key) if args.tls_cert else None)
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
    if server.websocket is not None:
        tls = server.websocket.ssl_context is not None
        print(f"AMQP over WebSocket: {server.websocket.scheme}://{server.host}:{server.websocket.port}/$servicebus/websocket; "
              f"connect with transport websocket, custom_endpoint_address sb://{server.host}:{server.websocket.port}"
              + (" and the CA of --tls-cert (connection_verify), and a connection string without "
                 "UseDevelopmentEmulator (which turns TLS off)" if tls else ""), flush=True)
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
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert and args.websocket_port is None:
        parser.error("--tls-cert is for the WebSocket listener: give --websocket-port too")
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
