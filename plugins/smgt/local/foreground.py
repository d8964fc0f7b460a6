"""Run a managed server (SeaweedFS, Label Studio) in the foreground, for shell scripts and compose:
start it, print one ready line, stop it on SIGTERM/SIGINT/SIGHUP, and exit when it exits.

The server object gives `start(timeout)`, `alive`, `stop(grace) -> exit status`, `log_tail()`.
Exit status: 0 after a requested stop; when the server ended on its own, its status (128 + the
signal number if a signal killed it, 1 if it exited with 0); 1 if it could not start.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any


def run_until_signal(server: Any, *, name: str, ready: Callable[[], str], start_timeout: float,
                     stop_grace: float, start_errors: tuple[type[Exception], ...]) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start(timeout=start_timeout)
    except start_errors as err:
        print(f"{name}: {err}", file=sys.stderr, flush=True)
        return 1
    print(ready(), flush=True)
    while server.alive and not stop.wait(0.5):
        pass
    status = server.stop(grace=stop_grace)
    if stop.is_set():
        return 0
    print(f"{name}: the server exited with status {status}; log:\n{server.log_tail()}", file=sys.stderr, flush=True)
    return 128 - status if status is not None and status < 0 else (status or 1)
