"""Reading a subprocess's output in tests with a timeout on every wait."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time


class Lines:
    """The output lines of a process, read by a thread into a queue, so every wait has a timeout
    (a blocking readline on a silent pipe would hang the test)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.seen = ""
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def line(self, timeout: float) -> str:
        """The next line (a blocking readline would hang the test on a silent pipe)."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s:\n{self.seen}") from None
        if line is None:
            self._queue.put(None)  # the end stays visible to rest()
            raise AssertionError(f"output ended:\n{self.seen}")
        self.seen += line
        return line

    def until(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen += line
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.seen}")

    def rest(self, timeout: float) -> str:
        """Everything until the process closes its output (it has exited)."""
        self.process.wait(timeout)
        deadline = time.monotonic() + 5
        rest = ""
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            rest += line
        self.seen += rest
        return rest
