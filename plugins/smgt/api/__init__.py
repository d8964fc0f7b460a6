"""The batch HTTP API (SPEC section 7) served by the Airflow API server under /smgt.

`create_app()` builds the FastAPI app that `plugins/smgt_plugin.py` registers as a plugin
`fastapi_apps` entry; see `smgt.api.app` for the routes and `smgt.api.auth` for how Airflow's auth
manager protects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

URL_PREFIX = "/smgt"


def create_app() -> FastAPI:
    # Imported on demand: the app pulls in Airflow's API-server modules, which only the API server needs.
    from smgt.api.app import create_app as _create_app

    return _create_app()
