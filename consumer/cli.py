"""The command line: thin argument parsing that calls into the modules that do the work."""

from __future__ import annotations

import argparse
import sys

from consumer import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acs-sms-consumer",
        description="Azure Communication Services SMS diagnostic logs from Event Hubs → Prometheus metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = sub.add_parser("replay", help="run captured event bodies through the pipeline and print the metrics")
    replay.add_argument("inputs", nargs="+", metavar="FILE",
                        help="a body per file, a body per line of a .jsonl file, a body per file of a directory, or - for stdin")
    replay.add_argument("--config", help="take the pipeline section (limits, buckets) from this config file")

    run = sub.add_parser("run", help="consume the Event Hub and serve /metrics")
    run.add_argument("--config", required=True, help="YAML configuration file (see config.example.yaml)")

    check = sub.add_parser("check-config", help="validate a configuration and print it with secrets redacted")
    check.add_argument("--config", required=True, help="YAML configuration file")

    sub.add_parser("emulator", help="run a local Event Hubs endpoint (development tool)", add_help=False)
    sub.add_parser("simulate", help="publish synthetic ACS SMS diagnostic logs to an Event Hub", add_help=False)
    sub.add_parser("demo", help="local endpoint + checkpoint store + traffic + consumer, no Azure needed", add_help=False)
    return parser


# Sub-commands that own their argument parsing (development tools) get the rest of the line.
_DELEGATED = {"emulator", "simulate", "demo"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "replay":
        from consumer.config import ConfigError, PipelineSettings, load_settings
        from consumer.replay import main as replay_main

        settings = PipelineSettings()
        if args.config:
            try:
                settings = load_settings(args.config).pipeline
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 2
        return replay_main(args.inputs, settings)
    if args.command == "check-config":
        from consumer.app import check_config

        return check_config(args.config)
    if args.command == "run":
        from consumer.app import run

        return run(args.config)
    raise AssertionError(args.command)


def _delegate(command: str, rest: list[str]) -> int:
    if command == "emulator":
        from consumer.devtools.eventhubs import main as emulator_main

        return emulator_main(rest)
    if command == "simulate":
        from consumer.devtools.traffic import main as simulate_main

        return simulate_main(rest)
    from consumer.devtools.demo import main as demo_main

    return demo_main(rest)
