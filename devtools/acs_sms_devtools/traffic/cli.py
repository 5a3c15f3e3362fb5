"""`acs-sms-consumer simulate`: argument parsing, `--dry-run`, and the run until its bound or Ctrl-C /
SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import random
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, IO

from consumer.connection_strings import is_local_eventhub
from consumer.labels import ISO_COUNTRIES, NUMBER_TYPES

from .vocabulary import DEFAULT_COUNTRIES, DEFAULT_NUMBER_TYPES
from .options import Drill, TrafficOptions, parse_mix
from .oracle import Stats
from .generator import TrafficGenerator
from .publisher import PublishReport, publish

__all__ = ["CONNECTION_STRING_ENV", "build_parser", "options_from_args", "write_dry_run", "main"]

#: Where `main` looks for a connection string when --connection-string is not given (keeps the
#: secret out of the process list).
CONNECTION_STRING_ENV: Final = "ACS_SIMULATE_CONNECTION_STRING"
#: What publishing synthetic records to a real hub does, said before it happens.
POLLUTES: Final = ("Synthetic records on a real hub reach every consumer of it: they pollute every counter of "
                   "acs-sms-consumer (operations, failures, latency, usage), the dashboards, the usage figures, "
                   "and can fire alerts and page the on-call")


def _mix_type(allowed: Sequence[str] | frozenset[str], expected: str | None) -> Callable[[str], dict[str, float]]:
    def parse(text: str) -> dict[str, float]:
        try:
            return parse_mix(text, allowed, expected=expected)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "mix"  # argparse names the type in some messages
    return parse


def _number(kind: type[int] | type[float], minimum: float, *, inclusive: bool = True,
            maximum: float | None = None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum) or (
                maximum is not None and value > maximum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            if maximum is not None:
                bound += f" and <= {maximum:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _country(text: str) -> str:
    code = text.strip().upper()
    if code not in ISO_COUNTRIES:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def build_parser() -> argparse.ArgumentParser:
    """The `acs-sms-consumer simulate` options."""
    parser = argparse.ArgumentParser(
        prog="acs-sms-consumer simulate",
        description="Publish synthetic Azure Communication Services SMS diagnostic logs (Event Hubs shape) "
                    "to an Event Hub, paced in real time, or write them as JSON lines with --dry-run.",
        epilog=f"The connection string may also come from ${CONNECTION_STRING_ENV}. Without --duration or "
               "--records the run lasts until Ctrl-C.\n\n"
               "exit status:\n"
               "  0  published everything asked for, or stopped by Ctrl-C / SIGTERM (after its summary)\n"
               "  1  publishing failed (the error on one line), --dry-run FILE cannot be written, or\n"
               "     stdout was closed early (`--dry-run - | head`)\n"
               "  2  the arguments are wrong",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("where to")
    target.add_argument("--connection-string", metavar="STRING", help="Event Hubs connection string (namespace or hub level)")
    target.add_argument("--eventhub", metavar="NAME", help="Event Hub name (unless the connection string has EntityPath)")
    target.add_argument("--fully-qualified-namespace", metavar="HOST",
                        help="e.g. my-ns.servicebus.windows.net; authenticates with DefaultAzureCredential")
    target.add_argument("--allow-remote-hub", action="store_true",
                        help="publish to a hub that is not a local endpoint (loopback host or UseDevelopmentEmulator=true): "
                             f"{POLLUTES}")
    target.add_argument("--dry-run", metavar="FILE", help="write the bodies as JSON lines to FILE (- for stdout) "
                                                         "as fast as possible instead of publishing")
    what = parser.add_argument_group("what")
    what.add_argument("--rate", type=_number(float, 0, inclusive=False), default=200.0, metavar="N",
                      help="records per second, all kinds together (default 200)")
    what.add_argument("--failure-ratio", type=_number(float, 0, maximum=1), default=0.05, metavar="RATIO",
                      help="share of failed sends and of failed delivery reports, 0..1 (default 0.05)")
    what.add_argument("--countries", type=_mix_type(ISO_COUNTRIES, "an ISO 3166-1 alpha-2 code"), default=dict(DEFAULT_COUNTRIES),
                      metavar="CC=W,...", help="destination country weights (default US=70,CA=10,GB=10,FR=10)")
    what.add_argument("--number-types", type=_mix_type(NUMBER_TYPES, None), default=dict(DEFAULT_NUMBER_TYPES),
                      metavar="TYPE=W,...", help="sender number type weights (default "
                      + ",".join(f"{k}={v:g}" for k, v in DEFAULT_NUMBER_TYPES.items()) + ")")
    what.add_argument("--duration", type=_number(float, 0, inclusive=False), metavar="SECONDS",
                      help="seconds of traffic")
    what.add_argument("--records", type=_number(int, 1), metavar="N",
                      help="stop after this many records")
    what.add_argument("--seed", type=int, metavar="N", help="random seed (default: a random one, printed at the end)")
    what.add_argument("--records-per-body", type=_number(int, 1), default=50, metavar="N",
                      help="records per event body (default 50)")
    what.add_argument("--body-span", type=_number(float, 0, inclusive=False), default=1.0, metavar="SECONDS",
                      help="a body holds at most this many seconds of records (default 1)")
    drill = parser.add_argument_group("alert drill: every delivery report for one country fails for a while (a carrier outage)")
    drill.add_argument("--drill-country", type=_country, metavar="CC", help="ISO 3166-1 alpha-2 code of the country")
    drill.add_argument("--drill-seconds", type=_number(float, 0, inclusive=False), metavar="SECONDS",
                       help="how long the drill lasts (default 30)")
    drill.add_argument("--drill-after", type=_number(float, 0), metavar="SECONDS",
                       help="seconds of normal traffic before the drill (default 0)")
    parser.add_argument("--progress-every", type=_number(float, 0, inclusive=False), default=5.0, metavar="SECONDS",
                        help="seconds between progress lines on stderr (default 5)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the final one")
    return parser


def options_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrafficOptions:
    """Cross-option checks and the `TrafficOptions` they describe (errors go through `parser.error`)."""
    if args.dry_run is None:
        if args.connection_string and args.fully_qualified_namespace:
            parser.error("give either --connection-string or --fully-qualified-namespace, not both")
        if not args.connection_string and not args.fully_qualified_namespace:
            parser.error(f"--connection-string (or ${CONNECTION_STRING_ENV}) or --fully-qualified-namespace is "
                         "required, unless --dry-run")
        if args.fully_qualified_namespace and not args.eventhub:
            parser.error("--fully-qualified-namespace needs --eventhub")
        if args.connection_string and not args.eventhub and "entitypath=" not in args.connection_string.lower():
            parser.error("the connection string has no EntityPath: give --eventhub")
        if not args.allow_remote_hub and not is_local_eventhub(args.connection_string, args.fully_qualified_namespace):
            parser.error("the hub is not a local endpoint (a loopback host, or UseDevelopmentEmulator=true in the "
                         f"connection string); nothing was sent. {POLLUTES}. Pass --allow-remote-hub if that is "
                         "intended (a drill on a staging hub, with its alerts silenced)")
    elif args.duration is None and args.records is None:
        parser.error("--dry-run needs --duration or --records (it does not wait for the clock)")
    if args.drill_country is None and (args.drill_seconds is not None or args.drill_after is not None):
        parser.error("--drill-seconds and --drill-after need --drill-country")
    try:
        return TrafficOptions(
            rate=args.rate,
            failure_ratio=args.failure_ratio,
            countries=args.countries,
            number_types=args.number_types,
            records_per_body=args.records_per_body,
            body_span=args.body_span,
            duration=args.duration,
            records=args.records,
            seed=args.seed if args.seed is not None else random.SystemRandom().randrange(2**31),
            drill=Drill(args.drill_country, 30.0 if args.drill_seconds is None else args.drill_seconds,
                        args.drill_after or 0.0) if args.drill_country else None,
        )
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def write_dry_run(options: TrafficOptions, out: IO[bytes], start: datetime | None = None) -> Stats:
    """Write every body of a bounded run as one JSON line; return the ground truth."""
    generator = TrafficGenerator(dataclasses.replace(options, start=start or datetime.now(UTC)))
    for body in generator.bodies():
        out.write(body.encode())
        out.write(b"\n")
    out.flush()
    return generator.stats


def main(argv: list[str] | None = None) -> int:
    """`acs-sms-consumer simulate ...`. Returns the exit status (bad options exit with 2 via argparse)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.connection_string is None and args.dry_run is None:
        args.connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
    options = options_from_args(args, parser)
    if args.dry_run is not None:
        if args.dry_run == "-":
            try:
                stats = write_dry_run(options, sys.stdout.buffer)
            except BrokenPipeError:  # `simulate --dry-run - | head`: the reader has had enough
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return 1
        else:
            try:
                with open(args.dry_run, "wb") as out:
                    stats = write_dry_run(options, out)
            except OSError as exc:
                print(f"simulate: cannot write {args.dry_run}: {exc.strerror or exc}", file=sys.stderr)
                return 1
        print(f"simulate: seed {options.seed}: {stats.summary()}", file=sys.stderr)
        return 0

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        asyncio.run(_main_async(options, args, say))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0  # Ctrl-C / SIGTERM is how an unbounded run ends; publish has printed its summary
    except Exception as exc:  # noqa: BLE001 - one clear line instead of an SDK traceback
        print(f"simulate: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _main_async(options: TrafficOptions, args: argparse.Namespace, say: Callable[[str], None]) -> PublishReport:
    """SIGTERM cancels the run like Ctrl-C does, so a container stop also ends it cleanly."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    progress_every = math.inf if args.quiet else args.progress_every
    if args.connection_string:
        return await publish(options, connection_string=args.connection_string, eventhub_name=args.eventhub,
                             progress=say, progress_every=progress_every)
    from azure.identity.aio import DefaultAzureCredential

    async with DefaultAzureCredential() as credential:
        return await publish(options, fully_qualified_namespace=args.fully_qualified_namespace,
                             eventhub_name=args.eventhub, credential=credential, progress=say,
                             progress_every=progress_every)
