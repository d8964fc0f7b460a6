"""The batch HTTP API of SPEC section 7, as a FastAPI app mounted in the Airflow API server.

Paths and payloads are the reference solution's (`batch/create`, `batch/show`,
`batch-metadata/post`, `workforce/show`) so its clients move over by changing the base URL and auth.
Every answer about a batch comes from `smgt.batch_status` (the same functions the DAG and UI use),
so there is no second record of batch state that could drift from Airflow's.

Errors are JSON `{"message": ..., "errors"?: [...]}`; `detail` carries the same text so clients
written for Airflow's REST API (which read `detail`) understand them too.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from smgt.api import aws
from smgt.api.auth import (
    BATCH_DAG_ID,
    GetUserDep,
    can_read,
    can_respond,
    can_trigger,
    check_dag_access,
    login_url,
    optional_user,
)
from smgt.config import BATCH_ID_RE, BatchConfigError, batch_config_json_schema, validate_batch_config
from smgt.settings import get_settings

STATUSES = ("IN_PROGRESS", "WAIT_FOR_META_DATA_INPUT", "COMPLETE", "INTERNAL_ERROR", "VALIDATION_FAIL")
DEFAULT_PAGE = 500
MAX_PAGE = 1000
MAX_BODY_BYTES = 1_000_000  # a 100-job batch config is ~50 kB; refuse to parse megabytes of junk


class ApiError(Exception):
    """An answer with a status, a message and optionally every individual problem."""

    def __init__(self, status_code: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.errors = errors


def _error_body(message: str, errors: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "detail": message}
    if errors is not None:
        body["errors"] = errors
    return body


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(_error_body(exc.message, exc.errors), status_code=exc.status_code)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Airflow's auth dependencies raise plain HTTPExceptions (401 "Not authenticated", 403 ...).
    assert isinstance(exc, HTTPException)
    detail = exc.detail
    message = detail if isinstance(detail, str) else json.dumps(detail)
    return JSONResponse(_error_body(message), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    # Query parameters of the wrong type are the caller's mistake: 400 like every other one here.
    assert isinstance(exc, RequestValidationError)
    errors = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
    return JSONResponse(_error_body("invalid request", errors), status_code=status.HTTP_400_BAD_REQUEST)


async def json_body(request: Request) -> Any:
    """The request body as parsed JSON; 400 for anything that is not JSON.

    Bodies are read raw (not through a pydantic model) so batch/create reports problems with
    `validate_batch_config`'s messages, all at once, instead of FastAPI's first-error 422.
    """
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(status.HTTP_400_BAD_REQUEST, f"request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise ApiError(status.HTTP_400_BAD_REQUEST, "request body must be a JSON object")
    try:
        # parse_constant turns NaN/Infinity (which json accepts and JSON does not) into errors.
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(status.HTTP_400_BAD_REQUEST, f"request body is not valid JSON: {exc}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


JsonBody = Annotated[Any, Depends(json_body)]


def _batch_status_module() -> Any:
    # Imported per call so the plugin loads (and the UI shows a clear error) even in a deployment
    # where the DAG package is older than the plugin.
    from smgt import batch_status

    return batch_status


def _preflight_unavailable() -> type[Exception]:
    from smgt.preflight import PreflightUnavailableError

    return PreflightUnavailableError


def _dag_bag(request: Request) -> Any:
    # Airflow's routes read the DagBag from `request.app.state`; in this mounted sub-app that is our
    # own state, so keep one DagBag here (same caching settings as the API server's).
    state = request.app.state
    if getattr(state, "dag_bag", None) is None:
        from airflow.api_fastapi.common.dagbag import create_dag_bag

        state.dag_bag = create_dag_bag()
    return state.dag_bag


def _audit(session: Any, user: Any, event: str, dag_id: str, run_id: str, extra: dict[str, Any]) -> None:
    """A row in Airflow's audit log (Browse > Audit Log), as Airflow's own routes write.

    Airflow's `action_logging` dependency is not used: it re-parses the body itself and fails with a
    500 on malformed JSON, which this API answers with a 400.
    """
    from airflow.models.log import Log

    session.add(
        Log(
            event=event,
            owner=user.get_name(),
            owner_display_name=user.get_name(),
            dag_id=dag_id,
            run_id=run_id,
            extra=json.dumps(extra),
        )
    )


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        offset = json.loads(base64.urlsafe_b64decode(padded.encode()))["offset"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(status.HTTP_400_BAD_REQUEST, "nextToken: not a token returned by batch/show") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ApiError(status.HTTP_400_BAD_REQUEST, "nextToken: not a token returned by batch/show")
    return offset


def _check_rate(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(
            status.HTTP_400_BAD_REQUEST,
            f"downSamplingRate: must be a number with 0 < rate <= 100, got {json.dumps(value)[:40]}",
        )
    if not 0 < value <= 100:
        raise ApiError(
            status.HTTP_400_BAD_REQUEST,
            f"downSamplingRate: must be a number with 0 < rate <= 100, got {value}",
        )
    return value


def create_app() -> FastAPI:
    app = FastAPI(
        title="smgt batch API",
        description=(
            "SageMaker Ground Truth labeling batches (SPEC section 7): the reference solution's "
            "batch/create, batch/show, batch-metadata/post and workforce/show, authenticated with "
            "Airflow (bearer token from `POST /auth/token` or the UI session)."
        ),
        version="1",
    )
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.post(
        "/batch/create",
        summary="Create a batch: validate its config and trigger a smgt_batch run",
        dependencies=[can_trigger],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": batch_config_json_schema(get_settings().max_job_level)}
                },
            }
        },
        responses={
            400: {"description": "Invalid config, or what it names on S3 / SNS / SageMaker fails the "
                                 "pre-flight (smgt.preflight); `errors` lists every problem, nothing was created"},
            409: {"description": "batchId already used"},
            502: {"description": "AWS could not be reached to pre-flight the batch; nothing was created"},
        },
    )
    def batch_create(
        request: Request, body: JsonBody, user: GetUserDep, session: SessionDep
    ) -> dict[str, Any]:
        settings = get_settings()
        duplicate: list[str] = []

        def batch_exists(batch_id: str) -> bool:
            # A run id equal to the batchId, or any batch run whose conf or resolved config carries
            # it (runs triggered from the UI form get a generated run id): batch_status knows how
            # batches are found; the trigger guard asks the same question.
            if _batch_status_module().batch_id_in_use(session, batch_id):
                duplicate.append(batch_id)
                return True
            return False

        reports: list[Any] = []

        def preflight(config: Any) -> list[str]:
            # Everything the valid config names on AWS, read with the deployment's credentials
            # (smgt.preflight: bounded in calls and time); nothing is written.
            from smgt.preflight import preflight_batch

            report = preflight_batch(config, aws.preflight_clients(settings), settings=settings)
            reports.append(report)
            return report.problems

        try:
            config = validate_batch_config(
                body,
                region=settings.region,
                max_job_level=settings.max_job_level,
                max_jobs=settings.max_jobs_per_batch,
                batch_exists=batch_exists,
                existing_job_names=lambda names: aws.existing_job_names(names, settings),
                preflight=preflight,
            )
        except BatchConfigError as exc:
            if duplicate:
                raise ApiError(
                    status.HTTP_409_CONFLICT, f"batch {duplicate[0]!r} already exists", exc.problems
                ) from None
            raise ApiError(
                status.HTTP_400_BAD_REQUEST,
                f"invalid batch config: {len(exc.problems)} problem(s)",
                exc.problems,
            ) from None
        except (aws.AwsUnavailableError, _preflight_unavailable()) as exc:
            raise ApiError(status.HTTP_502_BAD_GATEWAY, str(exc)) from None

        # Trigger through Airflow's own POST /dagRuns code (params validation, import-error and
        # allowed-run-type checks, triggering user) rather than a second way of making runs.
        from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
        from airflow.api_fastapi.core_api.routes.public.dag_run import trigger_dag_run

        trigger_body = TriggerDAGRunPostBody(
            dag_run_id=config.batchId, logical_date=None, conf=config.to_conf()
        )
        try:
            run = trigger_dag_run(
                dag_id=BATCH_DAG_ID,
                body=trigger_body,
                dag_bag=_dag_bag(request),
                user=user,
                session=session,
                request=request,
            )
            session.flush()
        except IntegrityError:
            # Lost a race with a concurrent create of the same batchId: the unique run id wins once.
            session.rollback()
            raise ApiError(status.HTTP_409_CONFLICT, f"batch {config.batchId!r} already exists") from None
        except HTTPException as exc:
            if exc.status_code == status.HTTP_404_NOT_FOUND:
                raise ApiError(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"the {BATCH_DAG_ID} DAG is not loaded (has the dag-processor parsed dags/?): {exc.detail}",
                ) from None
            raise ApiError(exc.status_code, f"Airflow refused the run: {exc.detail}") from None
        _audit(
            session,
            user,
            "smgt_batch_create",
            BATCH_DAG_ID,
            run.run_id,
            {"jobs": [j.jobName for j in config.labelingJobs], "method": "POST"},
        )
        message = f"batch {config.batchId!r} created with {len(config.labelingJobs)} labeling job(s)"
        from airflow.models.dag import DagModel

        if session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == BATCH_DAG_ID)):
            message += f"; the {BATCH_DAG_ID} DAG is paused, so the batch starts when it is unpaused"
        answer: dict[str, Any] = {"batchId": run.run_id, "status": "IN_PROGRESS", "message": message}
        if reports:
            answer["preflight"] = reports[-1].summary()
        return answer

    @app.get(
        "/batch/show",
        summary="List batch ids by status, or show one batch with presigned input/output URLs",
        dependencies=[can_read],
        responses={400: {"description": "Bad paging or an empty batchId"}, 404: {"description": "Unknown batchId"}},
    )
    def batch_show(
        user: GetUserDep,
        session: SessionDep,
        batchId: Annotated[str | None, Query(max_length=200)] = None,  # noqa: N803 (the reference's name)
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        offset: Annotated[int, Query(ge=0)] = 0,
        nextToken: Annotated[str | None, Query(max_length=200)] = None,  # noqa: N803
    ) -> dict[str, Any]:
        status_mod = _batch_status_module()
        if batchId is not None and not batchId.strip():
            raise ApiError(status.HTTP_400_BAD_REQUEST, "batchId: empty; leave it out to list every batch")
        if batchId is not None:
            snapshot = status_mod.load_batch(session, batchId)
            if snapshot is None:
                raise ApiError(status.HTTP_404_NOT_FOUND, f"batch {batchId!r} not found")
            if snapshot.dag_id != BATCH_DAG_ID:
                check_dag_access(user, snapshot.dag_id, "GET", DagAccessEntity.RUN)
            try:
                presign = aws.presigner(get_settings())
            except aws.AwsUnavailableError as exc:
                # The batch state is Airflow's and still worth showing; say why URLs are missing.
                detail = status_mod.describe_batch(snapshot, None)
                detail["presignError"] = str(exc)
                return detail
            return status_mod.describe_batch(snapshot, presign)
        if nextToken is not None:
            offset = _decode_token(nextToken)
        listing = status_mod.list_batches(session, limit=limit, offset=offset)
        result: dict[str, Any] = {key: list(listing.get(key, [])) for key in STATUSES}
        if "total" in listing:
            # batch_status knows how many batches there are: a next page exactly when more remain.
            result["total"] = listing["total"]
            if listing.get("nextOffset") is not None:
                result["nextToken"] = _encode_token(listing["nextOffset"])
        elif sum(len(ids) for ids in result.values()) >= limit:
            # Without a total, a full page may have more behind it; a short page is the last one.
            result["nextToken"] = _encode_token(offset + limit)
        return result

    @app.post(
        "/batch-metadata/post",
        summary="Give the down-sampling rate a waiting batch needs (answers its HITL task)",
        dependencies=[can_trigger, can_respond],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["batchId", "downSamplingRate"],
                            "additionalProperties": False,
                            "properties": {
                                "batchId": {"type": "string", "pattern": "^[a-zA-Z0-9-]{1,63}$"},
                                "downSamplingRate": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                            },
                        }
                    }
                },
            }
        },
        responses={
            400: {"description": "Bad body or rate"},
            404: {"description": "Unknown batchId"},
            409: {"description": "The batch is not waiting for metadata, or it was already given"},
        },
    )
    def batch_metadata_post(body: JsonBody, user: GetUserDep, session: SessionDep) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(status.HTTP_400_BAD_REQUEST, "request body must be a JSON object")
        problems = [
            f"{k!r}: unknown field (allowed: batchId, downSamplingRate)"
            for k in body
            if k not in ("batchId", "downSamplingRate")
        ]
        batch_id = body.get("batchId")
        if not isinstance(batch_id, str) or not BATCH_ID_RE.fullmatch(batch_id):
            problems.append(
                f"batchId: required, must match ^[a-zA-Z0-9-]{{1,63}}$, got {json.dumps(batch_id)[:80]}"
            )
        if "downSamplingRate" not in body:
            problems.append("downSamplingRate: required")
        else:
            try:
                _check_rate(body["downSamplingRate"])
            except ApiError as exc:
                problems.append(exc.message)
        if problems:
            raise ApiError(status.HTTP_400_BAD_REQUEST, "; ".join(problems), problems)
        rate = body["downSamplingRate"]

        status_mod = _batch_status_module()
        snapshot = status_mod.load_batch(session, batch_id)
        if snapshot is None:
            raise ApiError(status.HTTP_404_NOT_FOUND, f"batch {batch_id!r} not found")
        if snapshot.dag_id != BATCH_DAG_ID:
            check_dag_access(user, snapshot.dag_id, "POST", DagAccessEntity.RUN)
            check_dag_access(user, snapshot.dag_id, "PUT", DagAccessEntity.HITL_DETAIL)
        waiting = status_mod.waiting_rate_task(snapshot)
        if waiting is None:
            raise ApiError(
                status.HTTP_409_CONFLICT,
                f"batch {batch_id!r} is not waiting for batch metadata ({status_mod.rate_not_awaited_reason(snapshot)})",
            )
        task_id, map_index = waiting
        from smgt.metadata import RateNotAwaitedError, answer_down_sampling_rate

        try:
            answer_down_sampling_rate(
                session, dag_id=snapshot.dag_id, run_id=snapshot.run_id, task_id=task_id,
                map_index=map_index, rate=rate, user=user,
            )
        except RateNotAwaitedError as exc:
            raise ApiError(status.HTTP_409_CONFLICT, str(exc)) from None
        _audit(
            session,
            user,
            "smgt_batch_metadata_post",
            snapshot.dag_id,
            batch_id,
            {"task_id": task_id, "downSamplingRate": rate, "method": "POST"},
        )
        return {
            "batchId": batch_id,
            "downSamplingRate": rate,
            "message": f"down-sampling rate {rate}% given; batch {batch_id!r} resumes",
        }

    @app.get(
        "/workforce/show", summary="The two work teams and their Cognito members", dependencies=[can_read]
    )
    def workforce_show() -> list[dict[str, Any]]:
        try:
            return aws.describe_workforce(get_settings())
        except aws.AwsUnavailableError as exc:
            raise ApiError(status.HTTP_502_BAD_GATEWAY, str(exc)) from None

    @app.get("/ui", response_class=HTMLResponse, include_in_schema=False)
    def ui_page(
        request: Request,
        user: Annotated[Any, Depends(optional_user)],
        session: SessionDep,
        page: Annotated[int, Query(ge=0, le=100_000)] = 0,
    ) -> Response:
        from smgt.api import ui

        if user is None:
            # A person, not a client: send them to Airflow's login and back here afterwards.
            return RedirectResponse(login_url(str(request.url)), status_code=status.HTTP_303_SEE_OTHER)
        try:
            check_dag_access(user, BATCH_DAG_ID, "GET", DagAccessEntity.RUN)
        except HTTPException:
            return HTMLResponse(ui.forbidden_page(user.get_name()), status_code=status.HTTP_403_FORBIDDEN)
        return HTMLResponse(ui.batches_page(session, _batch_status_module(), page=page))

    return app
