"""`acs-sms-consumer replay`: run captured event bodies through the live pipeline, print the metrics.

Inputs: a file holds one body; a `.jsonl` file holds one body per line; a directory (for example a
local download of the dead-letter container) holds one body per file; `-` reads one body from
standard input. The metrics go to stdout in Prometheus text format, a one-line summary to stderr.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from consumer import __version__
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline
from consumer.settings import PipelineSettings

REPLAY_PARTITION = "replay"


class InputError(Exception):
    """An input cannot be read at all (missing, unreadable): the replay stops with this message."""


@dataclass
class ReplaySummary:
    bodies: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    records: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        rejected = sum(self.rejected.values())
        reasons = " ".join(f"{k}={v}" for k, v in sorted(self.rejected.items()))
        outcomes = " ".join(f"{k}={self.records[k]}" for k in ("processed", "invalid", "skipped", "duplicate"))
        return (
            f"replay: {self.bodies} bodies, {rejected} rejected{f' ({reasons})' if reasons else ''}; "
            f"{sum(self.records.values())} records: {outcomes}"
        )


def iter_bodies(inputs: list[str], stdin: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Yield (where, body) for every body of every input, in order. Raises InputError."""
    for name in inputs:
        if name == "-":
            yield "<stdin>", stdin.read()
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            for file in files:
                yield from _file_bodies(file)
        else:
            yield from _file_bodies(path)


def _file_bodies(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".jsonl":
        # Split on LF only: a CR inside a body is one of the defects we replay.
        for number, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield f"{path}:{number}", line
    else:
        yield str(path), data


def replay(inputs: list[str], settings: PipelineSettings, stdout: BinaryIO, stderr: BinaryIO, stdin: BinaryIO) -> int:
    metrics = Metrics(settings.buckets, __version__)
    pipeline = Pipeline(settings, metrics.domain)
    summary = ReplaySummary()
    context = EventContext(partition=REPLAY_PARTITION)
    try:
        for where, body in iter_bodies(inputs, stdin):
            result = pipeline.process(body, time.time(), context)
            summary.bodies += 1
            if result.decode_error is not None:
                summary.rejected[result.decode_error.value] += 1
                stderr.write(f"replay: {where}: rejected ({result.decode_error.value}): {result.detail}\n".encode())
            for outcome in ("processed", "invalid", "skipped", "duplicate"):
                summary.records[outcome] += getattr(result, outcome)
            for reason in result.invalid_reasons:
                stderr.write(f"replay: {where}: invalid record: {reason}\n".encode())
    except InputError as exc:
        stderr.write(f"acs-sms-consumer replay: error: {exc}\n".encode())
        return 2
    stdout.write(metrics.render())
    stderr.write((summary.line() + "\n").encode())
    return 0


def main(inputs: list[str], settings: PipelineSettings) -> int:
    return replay(inputs, settings, sys.stdout.buffer, sys.stderr.buffer, sys.stdin.buffer)
