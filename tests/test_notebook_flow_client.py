"""examples/notebook_flow.py's client rides out a restart of the deployment: its requests are
refused for a while, then answered."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from smgt.embedded import free_port

FLOW = Path(__file__).resolve().parents[1] / "examples" / "notebook_flow.py"


def load_flow():
    spec = importlib.util.spec_from_file_location("notebook_flow", FLOW)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TokenOnly(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"access_token": "t0ken"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_server_that_starts_late_is_waited_for():
    flow, port = load_flow(), free_port()
    served = []

    def start_late() -> None:
        time.sleep(2.5)  # connections are refused until then, as while the deployment restarts
        with HTTPServer(("127.0.0.1", port), TokenOnly) as server:
            served.append(time.monotonic())
            server.handle_request()

    thread = threading.Thread(target=start_late)
    started = time.monotonic()
    thread.start()
    api = flow.BatchApi(f"http://127.0.0.1:{port}", "admin", "pw")
    thread.join(10)
    assert api.http.headers["Authorization"] == "Bearer t0ken"
    assert served and served[0] - started >= 2.5
