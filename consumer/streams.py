"""The process's standard streams, for the commands that print (`check-config`, `replay`)."""

from __future__ import annotations

import os
import sys


def close_stdout_quietly() -> None:
    """After a BrokenPipeError on stdout: point stdout at /dev/null, so that the interpreter's final
    flush does not fail again (with 'Exception ignored ... BrokenPipeError' on stderr)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
