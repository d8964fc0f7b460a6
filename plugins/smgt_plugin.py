"""The one file Airflow loads from plugins/: registers the smgt batch API and its UI page.

Airflow imports plugin files in every process (scheduler, dag-processor, each task), so the
FastAPI app is only built when something reads `fastapi_apps` - which only the API server does.
`plugins/.airflowignore` keeps Airflow from scanning the `smgt` package itself as plugins.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from smgt import listeners as batch_listeners

URL_PREFIX = "/smgt"


class SmgtPlugin(AirflowPlugin):
    name = "smgt"

    # A failed batch run stops the Ground Truth jobs it started (scheduler and API paths alike).
    listeners = [batch_listeners]

    # A person's view of the batches inside the Airflow UI (nav menu -> iframe of /smgt/ui).
    external_views = [
        {
            "name": "Labeling batches",
            "href": f"{URL_PREFIX}/ui",
            "destination": "nav",
            "category": "browse",
            "url_route": "smgt-batches",
        }
    ]

    # The trigger form and the REST API refuse a smgt_batch run whose batchId another batch uses
    # (the run's own tasks cannot see other runs' confs): smgt.api.trigger_guard.
    @cached_property
    def fastapi_root_middlewares(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from smgt.api.trigger_guard import DuplicateBatchIdGuard

        return [{"name": "smgt duplicate batchId guard", "middleware": DuplicateBatchIdGuard}]

    # Also installs smgt.api.audit_log, which keeps the audit log's commit off the event loop: read
    # by the API server before it imports the routes that use it.
    @cached_property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        from smgt.api import audit_log, create_app

        audit_log.install()

        return [{"name": "smgt batch API", "app": create_app(), "url_prefix": URL_PREFIX}]
