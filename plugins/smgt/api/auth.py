"""Authentication and authorization of the batch API through Airflow's own auth manager.

Plugin FastAPI apps are mounted into the API server unprotected, so every route here depends on
Airflow's `get_user` (bearer JWT from `POST /auth/token`, or the UI's `_token` session cookie that
the root JWTRefreshMiddleware has already resolved) and on `requires_access_dag` for the batch DAG.
Both resolve the auth manager through the process-wide singleton rather than `request.app.state`,
which is what makes them usable inside a mounted sub-app (whose `request.app` is the sub-app).

Anonymous calls get 401 from `get_user`; an invalid token gets Airflow's 403 "Invalid JWT token";
an authenticated user without the permission gets 403 "Forbidden".
"""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    bearer_scheme,
    get_auth_manager,
    get_user,
    requires_access_dag,
)
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials

# The batch DAG every batch/create triggers; recurring batch DAGs are `smgt_recurring_*`.
BATCH_DAG_ID = "smgt_batch"
RECURRING_DAG_PREFIX = "smgt_recurring_"

# Reading batches (batch/show, workforce/show, the UI page) needs read access to the batch DAG's runs.
can_read = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=BATCH_DAG_ID))
# Creating a batch is triggering a run: the same permission as POST /api/v2/dags/{id}/dagRuns.
can_trigger = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=BATCH_DAG_ID))
# batch-metadata/post answers a HITL task: the permission of PATCH .../hitlDetails.
can_respond = Depends(requires_access_dag("PUT", DagAccessEntity.HITL_DETAIL, param_dag_id=BATCH_DAG_ID))

__all__ = [
    "BATCH_DAG_ID",
    "RECURRING_DAG_PREFIX",
    "GetUserDep",
    "can_read",
    "can_respond",
    "can_trigger",
    "check_dag_access",
    "optional_user",
]


def check_dag_access(user: BaseUser, dag_id: str, method: str, entity: DagAccessEntity) -> None:
    """403 unless `user` may `method` the `entity` of `dag_id`.

    The route dependencies check the batch DAG; a recurring batch lives in its own DAG, which an
    auth manager with per-DAG rules may treat differently, so routes re-check the batch's DAG.
    """
    from airflow.models.dag import DagModel

    allowed = get_auth_manager().is_authorized_dag(
        method=method,  # type: ignore[arg-type]
        access_entity=entity,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden")


async def optional_user(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> BaseUser | None:
    """The caller, or None when anonymous or the token is bad (HTML pages redirect to login)."""
    try:
        return await get_user(request, None, bearer)
    except HTTPException:
        return None


def login_url(next_url: str) -> str:
    return get_auth_manager().get_url_login(next_url=next_url)
