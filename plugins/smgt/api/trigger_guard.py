"""Refuse a `smgt_batch` trigger whose batchId another batch already uses, before the run exists.

The UI trigger form and Airflow's REST API create runs with `POST /api/v2/dags/smgt_batch/dagRuns`
and a generated run id, so Airflow's unique run id does not stop a second run with the same
batchId; and the run's own resolve_batch cannot look (Airflow 3 tasks have no metadata DB, and the
Execution API finds runs by run id only). This ASGI middleware (a plugin `fastapi_root_middlewares`
entry, so it runs in the API server, with the DB) asks `smgt.batch_status.batch_id_in_use` - the
question batch/create asks - and answers 409 with batch/create's message, which the trigger form
shows in its dialog. Everything else passes through untouched, and so does a request whose caller
may not trigger the DAG (Airflow then answers 401/403: nobody learns which ids exist) or that the
guard cannot read (Airflow answers it as usual).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

TRIGGER_PATH = re.compile(r"^/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")


def duplicate_message(batch_id: str) -> str:
    """batch/create's words for a used batchId (`smgt.config.validate_batch_config`)."""
    return f"batchId: {batch_id!r} is already used by an existing batch"


class DuplicateBatchIdGuard:
    """ASGI middleware: 409 for a batch DAG trigger whose conf's batchId is already used."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        match = TRIGGER_PATH.match(scope.get("path", "")) if scope.get("type") == "http" else None
        if match is None or scope.get("method") != "POST" or match["dag_id"] != _batch_dag_id():
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay(b"", message), send)
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        batch_id = _batch_id(body)
        if batch_id and await _may_trigger(scope, body, match["dag_id"]) and await _in_use(batch_id):
            from fastapi.responses import JSONResponse

            text = duplicate_message(batch_id)
            answer = JSONResponse({"detail": text, "message": f"batch {batch_id!r} already exists",
                                   "errors": [text]}, status_code=409)
            await answer(scope, _replay(body), send)
            return
        await self.app(scope, _replay(body), send)


def _batch_dag_id() -> str:
    from smgt.api.auth import BATCH_DAG_ID

    return BATCH_DAG_ID


def _replay(body: bytes, final: dict[str, Any] | None = None) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return final or {"type": "http.disconnect"}

    return receive


def _batch_id(body: bytes) -> str | None:
    try:
        conf = json.loads(body or b"null").get("conf")
    except (ValueError, AttributeError):
        return None
    batch_id = conf.get("batchId") if isinstance(conf, dict) else None
    return batch_id.strip() if isinstance(batch_id, str) and batch_id.strip() else None


async def _may_trigger(scope: dict[str, Any], body: bytes, dag_id: str) -> bool:
    """The caller is authenticated and may trigger `dag_id` (Airflow's own check, as its route does)."""
    from fastapi import HTTPException
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request

    from smgt.api.auth import check_dag_access

    try:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
        from airflow.api_fastapi.core_api.security import get_user
        from fastapi.security import HTTPAuthorizationCredentials

        request = Request(scope, _replay(body))
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None
        user = await get_user(request, None, bearer)
        await run_in_threadpool(check_dag_access, user, dag_id, "POST", DagAccessEntity.RUN)
    except HTTPException:
        return False
    except Exception:  # never break triggering: Airflow's route decides
        log.exception("trigger guard: could not check the caller of %s", scope.get("path"))
        return False
    return True


async def _in_use(batch_id: str) -> bool:
    from starlette.concurrency import run_in_threadpool

    def lookup() -> bool:
        from airflow.utils.session import create_session

        from smgt.batch_status import batch_id_in_use

        with create_session() as session:
            return batch_id_in_use(session, batch_id)

    try:
        return await run_in_threadpool(lookup)
    except Exception:
        log.exception("trigger guard: could not look up batch %r", batch_id)
        return False
