"""One WSGI endpoint: our SageMaker actions, a small admin API, and moto for everything else.

Routing is by the `X-Amz-Target: SageMaker.<Action>` header of SageMaker's JSON protocol; every
other request (S3, SNS, SQS, Cognito, other SageMaker actions) goes unchanged to moto's
`DomainDispatcherApplication`, which picks the service from the request's SigV4 scope.

Admin routes (never valid S3 bucket names, so they cannot shadow S3 paths):
    GET  /_smgt/health            {"status": "ok"}
    GET  /_smgt/stats             per-action call counts, throttled counts, calls in the last minute
    POST /_smgt/stats/reset
    GET  /_smgt/faults            current faults
    POST /_smgt/faults            replace the faults (JSON body, see faults.py)
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, quote

from .errors import ApiError, InternalFailure, ThrottlingException
from .faults import FaultState

Handler = Callable[[dict[str, Any], str], dict[str, Any]]
_SCOPE_RE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class Stats:
    """Call counts per action; `last_minute` lets a load test read a rate without keeping its own log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.calls: Counter[str] = Counter()
            self.throttled: Counter[str] = Counter()
            self.errors: Counter[str] = Counter()
            self.recent: deque[tuple[float, str]] = deque()
            self.since = time.time()

    def record(self, action: str, *, throttled: bool = False, error: str | None = None) -> None:
        now = time.time()
        with self._lock:
            self.calls[action] += 1
            if throttled:
                self.throttled[action] += 1
            if error:
                self.errors[f"{action}:{error}"] += 1
            self.recent.append((now, action))
            while self.recent and self.recent[0][0] < now - 60:
                self.recent.popleft()

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            last = Counter(a for t, a in self.recent if t >= now - 60)
            return {"since": self.since, "calls": dict(self.calls), "throttled": dict(self.throttled),
                    "errors": dict(self.errors), "last_minute": dict(last)}


def _region(environ: dict[str, Any], default: str) -> str:
    match = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else default


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _respond(start_response: Callable, status: int, body: Any, content_type: str) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(f"{status} {_REASONS.get(status, '')}", [
        ("Content-Type", content_type), ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ])
    return [data]


# The SNS and SQS calls that make, change or delete a topic, a subscription or a queue: moto keeps
# what they made in memory only; Dispatcher hands each one that succeeded to its `record_call`, and
# replay_calls makes them again in a new moto (the emulator's start). Messages are not among them.
RESOURCE_ACTIONS = frozenset(
    [f"sns:{a}" for a in ("CreateTopic", "DeleteTopic", "Subscribe", "Unsubscribe", "SetTopicAttributes",
                          "SetSubscriptionAttributes", "TagResource", "UntagResource", "AddPermission",
                          "RemovePermission", "PutDataProtectionPolicy")]
    + [f"sqs:{a}" for a in ("CreateQueue", "DeleteQueue", "SetQueueAttributes", "TagQueue", "UntagQueue",
                            "AddPermission", "RemovePermission")]
)
# What moto reads of a request besides its body and host: the method, the path, the protocol's
# headers, and the credential scope of the signature (its account and region).
_REPLAYED_KEYS = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "HTTP_X_AMZ_TARGET",
                  "HTTP_AUTHORIZATION")


# Where a recorded Subscribe keeps the subscription ARN moto answered (a random id), so that the
# Unsubscribe and SetSubscriptionAttributes calls naming it reach the subscription made on replay.
_SUBSCRIPTION_KEY = "smgt.SubscriptionArn"
_SUBSCRIPTION_ARN = re.compile(rb"<SubscriptionArn>([^<]+)</SubscriptionArn>")


def _subscription_arn(response: bytes) -> str | None:
    match = _SUBSCRIPTION_ARN.search(response)
    return match.group(1).decode() if match else None


def replay_calls(moto_app: Callable, calls: Iterable[tuple[dict[str, str], bytes]], host: str) -> int:
    """Make the recorded calls again in `moto_app`, in order, as if sent to `host` (queue URLs hold
    it); returns how many succeeded (one that fails now, e.g. a subscription to a queue deleted
    since, changes nothing). A subscription gets a new ARN from moto: later calls naming the
    recorded one are sent with the new one."""
    done, renamed = 0, {}
    for request, body in calls:
        request = dict(request)
        recorded_arn = request.pop(_SUBSCRIPTION_KEY, None)
        for old, new in renamed.items():
            body = body.replace(quote(old, safe="").encode(), quote(new, safe="").encode())
        status: list[str] = []
        environ = {**request, "HTTP_HOST": host, "SERVER_NAME": host.rsplit(":", 1)[0],
                   "SERVER_PORT": host.rsplit(":", 1)[-1], "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO(),
                   "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
                   "wsgi.run_once": False}
        response = b"".join(moto_app(environ, lambda line, headers, exc_info=None, seen=status: seen.append(line)))
        succeeded = bool(status) and status[0].startswith("2")
        done += succeeded
        if recorded_arn and succeeded and (arn := _subscription_arn(response)):
            renamed[recorded_arn] = arn
    return done


class Dispatcher:
    def __init__(self, *, handlers: dict[str, Handler], moto_app: Callable, faults: FaultState,
                 stats: Stats, default_region: str, extra_admin: dict[str, Callable[[], Any]] | None = None,
                 record_call: Callable[[dict[str, str], bytes], None] | None = None) -> None:
        self.handlers = handlers
        self.moto_app = moto_app
        self.faults = faults
        self.stats = stats
        self.default_region = default_region
        self.extra_admin = extra_admin or {}
        self.record_call = record_call
        # Resource calls are applied and recorded one at a time, so the record keeps their order.
        self._resource_calls = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_smgt/"):
            return self._admin(environ, start_response, path)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("SageMaker.") and target.split(".", 1)[1] in self.handlers:
            return self._sagemaker(target.split(".", 1)[1], environ, start_response)
        action = self._moto_action(environ, target)
        self.stats.record(action)
        if self.record_call is None or action not in RESOURCE_ACTIONS:
            return self.moto_app(environ, start_response)
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def recording_start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)
            return start_response(line, headers, exc_info)

        with self._resource_calls:
            response = list(self.moto_app(environ, recording_start_response))
            if status and status[0].startswith("2"):  # recorded before the caller hears it succeeded
                request = {k: environ[k] for k in _REPLAYED_KEYS if k in environ}
                if action == "sns:Subscribe":  # its ARN, which later calls name, is new on each replay
                    request[_SUBSCRIPTION_KEY] = _subscription_arn(b"".join(response)) or ""
                self.record_call(request, body)
        return response

    def _sagemaker(self, action: str, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        content_type = "application/x-amz-json-1.1"
        # Read the body first, even for a throttled call: on a kept-alive connection unread bytes
        # would be parsed as the next request.
        raw = _read_body(environ)
        try:
            if self.faults.should_throttle(action):
                self.stats.record(action, throttled=True, error="ThrottlingException")
                raise ThrottlingException("Rate exceeded")
            try:
                request = json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                raise ApiError("Malformed JSON body") from None
            result = self.handlers[action](request, _region(environ, self.default_region))
            self.stats.record(action)
            return _respond(start_response, 200, result, content_type)
        except ThrottlingException as exc:
            return _respond(start_response, exc.status, exc.body(), content_type)
        except ApiError as exc:
            self.stats.record(action, error=exc.code)
            return _respond(start_response, exc.status, exc.body(), content_type)
        except Exception as exc:  # a bug must still answer in SageMaker's shape
            err = InternalFailure(f"{type(exc).__name__}: {exc}")
            self.stats.record(action, error=err.code)
            return _respond(start_response, err.status, err.body(), content_type)

    def _moto_action(self, environ: dict[str, Any], target: str) -> str:
        match = _SCOPE_RE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = match.group(2) if match else "unknown"
        if target:
            return f"{service}:{target.rsplit('.', 1)[-1]}"
        ctype = environ.get("CONTENT_TYPE", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            # Query protocol (SNS, ...): the action is in the form body; read it and hand moto a copy.
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            action = parse_qs(body.decode(errors="replace")).get("Action", [""])[0]
            if action:
                return f"{service}:{action}"
        return f"{service}:{environ.get('REQUEST_METHOD', 'GET')}"

    def _admin(self, environ: dict[str, Any], start_response: Callable, path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        ctype = "application/json"
        raw = _read_body(environ)  # always consumed, for kept-alive connections
        try:
            if path == "/_smgt/health":
                return _respond(start_response, 200, {"status": "ok"}, ctype)
            if path == "/_smgt/stats" and method == "GET":
                return _respond(start_response, 200, self.stats.snapshot(), ctype)
            if path == "/_smgt/stats/reset" and method == "POST":
                self.stats.reset()
                return _respond(start_response, 200, self.stats.snapshot(), ctype)
            if path == "/_smgt/faults" and method == "GET":
                return _respond(start_response, 200, self.faults.faults.to_dict(), ctype)
            if path == "/_smgt/faults" and method == "POST":
                new = self.faults.set(json.loads(raw) if raw else {})
                return _respond(start_response, 200, new.to_dict(), ctype)
            if method == "GET" and (fn := self.extra_admin.get(path)):
                return _respond(start_response, 200, fn(), ctype)
        except (ValueError, TypeError, KeyError) as exc:
            return _respond(start_response, 400, {"error": str(exc)}, ctype)
        return _respond(start_response, 404, {"error": f"no admin route {method} {path}"}, ctype)
