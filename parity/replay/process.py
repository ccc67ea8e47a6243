"""Run the replay locustfile as a child process (the demo and the nightly job do; tests do too).

Locust monkey-patches the process it is imported into (gevent), so the harness never imports it: it
starts ``python -m locust -f <parity/replay/locustfile.py> ...`` and reads the Measurement it writes.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["STOP_GRACE_S", "locust_process", "locustfile_path", "log_tail"]

#: Seconds a Locust process gets to exit after SIGINT before it is killed.
STOP_GRACE_S = 10.0


def locustfile_path() -> str:
    """Path of the replay locustfile, found without importing it (importing Locust patches the process)."""
    spec = importlib.util.find_spec("parity.replay.locustfile")
    assert spec is not None
    assert spec.origin is not None
    return spec.origin


@contextmanager
def locust_process(args: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m locust ARGS`` with its output in ``log_path``; interrupted (SIGINT, then kill after
    ``STOP_GRACE_S``) if still running when the block exits."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", *args],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()


def log_tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of a log, joined with `` | `` (empty when unreadable)."""
    try:
        return " | ".join(path.read_text("utf-8", errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
