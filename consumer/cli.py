"""The command line: thin argument parsing that calls into the modules that do the work."""

from __future__ import annotations

import argparse
import os
import sys

from consumer import __version__
from consumer.streams import close_stdout_quietly

#: What each command's exit status means (its --help lists it).
EXIT_CODES = {
    "replay": """exit status:
  0  the metrics were printed (rejected bodies and invalid records are counted, not errors)
  1  stdout was closed before the metrics were all written (e.g. `| head`)
  2  an input or the --config file cannot be read or is invalid, or the arguments are wrong""",
    "run": """exit status:
  0  stopped by SIGTERM or SIGINT after a graceful shutdown (final checkpoints, ownership released)
  1  the Event Hubs receive loop stopped unexpectedly, or the shutdown took longer than
     shutdown_timeout_seconds
  2  the configuration is invalid or cannot work (nothing was started), no configuration file
     was given (--config or ACS_SMS_CONSUMER_CONFIG), or the arguments are wrong
  130, 143  a second SIGINT / SIGTERM during the shutdown: exited at once (128 + the signal)""",
    "check-config": """exit status:
  0  the configuration is valid (printed with secrets as ***; also when the reader of stdout
     stopped early, e.g. `| head`)
  2  the file cannot be read or the configuration is invalid or cannot work: every problem is
     listed on stderr with its key, never with a secret; no configuration file was given
     (--config or ACS_SMS_CONSUMER_CONFIG); or the arguments are wrong""",
}


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
             help: str) -> argparse.ArgumentParser:  # noqa: A002
    return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", epilog=EXIT_CODES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acs-sms-consumer",
        description="Azure Communication Services SMS diagnostic logs from Event Hubs → Prometheus metrics.",
        epilog="Each command's --help lists its exit status (acs-sms-consumer COMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay = _command(sub, "replay", "run captured event bodies through the pipeline and print the metrics")
    replay.add_argument("inputs", nargs="+", metavar="FILE",
                        help="a body per file, a body per line of a .jsonl file, a body per file of a directory, "
                             "or - for stdin")
    replay.add_argument("--config", help="take the pipeline section (limits, buckets) from this config file")

    run = _command(sub, "run", "consume the Event Hub and serve /metrics")
    run.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                     help="event loop: the standard library's (default) or uvloop (pip install "
                     "'acs-sms-consumer[uvloop]'; see docs/benchmarks.md)")
    check = _command(sub, "check-config", "validate a configuration and print it with secrets redacted and "
                                          "where each value came from")
    for command in (run, check):
        command.add_argument("--config", help="YAML configuration file (see config.example.yaml); default: "
                                              "$ACS_SMS_CONSUMER_CONFIG")
        command.add_argument("--secrets-dir", metavar="DIR",
                             help="directory of secret files, one per key, named like its environment variable "
                                  "(e.g. ACS_SMS_CONSUMER_EVENTHUB__CONNECTION_STRING); default: "
                                  "$ACS_SMS_CONSUMER_SECRETS_DIR")

    sub.add_parser("emulator", help="run a local Event Hubs endpoint (development tool)", add_help=False)
    sub.add_parser("simulate", help="publish synthetic ACS SMS diagnostic logs to an Event Hub", add_help=False)
    sub.add_parser("demo", help="local endpoint + checkpoint store + traffic + consumer, no Azure needed",
                   add_help=False)
    return parser


# Sub-commands that own their argument parsing get the rest of the line: the development tools, a
# separate distribution (devtools/, `acs-sms-devtools`) that the production image does not contain.
_DEVTOOLS = {"emulator": "acs_sms_devtools.eventhubs", "simulate": "acs_sms_devtools.traffic",
             "demo": "acs_sms_devtools.demo"}


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # `... | head`: the reader has had enough; no traceback
        close_stdout_quietly()
        return 1


def _main(argv: list[str]) -> int:
    if argv and argv[0] in _DEVTOOLS:
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
    from consumer.config_sources import CONFIG_VARIABLE

    config = args.config or os.environ.get(CONFIG_VARIABLE, "").strip()
    if not config:
        print(f"acs-sms-consumer {args.command}: no configuration file: give --config FILE or set {CONFIG_VARIABLE} "
              "(an empty file will do when every key comes from the environment or secret files)", file=sys.stderr)
        return 2
    if args.command == "check-config":
        from consumer.app import check_config

        return check_config(config, args.secrets_dir)
    if args.command == "run":
        from consumer.app import run

        return run(config, args.loop, args.secrets_dir)
    raise AssertionError(args.command)


def _delegate(command: str, rest: list[str]) -> int:
    import importlib

    try:
        module = importlib.import_module(_DEVTOOLS[command])
    except ModuleNotFoundError as exc:
        if exc.name != "acs_sms_devtools":
            raise
        print(f"acs-sms-consumer {command}: the development tools are not installed (they are not part of "
              "the service's package); from a clone of the repository: pip install -e ./devtools",
              file=sys.stderr)
        return 2
    return int(module.main(rest))
