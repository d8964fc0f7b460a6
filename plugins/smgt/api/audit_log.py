"""Airflow's audit log of UI and REST actions, its commit moved off the API server's event loop.

Airflow 3.3's `airflow.api_fastapi.logging.decorators.action_logging` is the dependency that
records every action of the UI and the REST API in the audit log (trigger, clear, mark, pause,
a Required Actions answer...). It is an `async def` that ends with a blocking `session.commit()`,
so it runs on the api-server's event loop. On SQLite (the embedded default) that commit waits for
the database write lock, up to the 60 s busy timeout. When the lock is held by another request of
the same api-server, whose transaction is committed in FastAPI's dependency teardown (which this
same, now blocked, event loop has to schedule), neither can go on until SQLite gives up: the
action fails with 500 "database is locked" after 60 s and the other request (typically a task's
`PATCH /execution/task-instances/<id>/run`) takes 60 s. Seen in CI on a trigger from the UI that
landed within milliseconds of a task start; the triggerer and the dag-processor logged their loops
as stalled for the same 60 s.

`install()` wraps the dependency so that the record is still built by Airflow's own code, and only
its commit runs in the thread pool (`run_in_threadpool`), leaving the event loop free to finish
the request that holds the lock. The same row is written, in the same transaction, before the
endpoint runs, as before. Postgres is not affected either way (row locks; the INSERT waits on
nothing), and is patched alike.

Installed by the smgt plugin when the API server builds its FastAPI apps, which it does before it
imports the core routes that bind `action_logging()` (`airflow.api_fastapi.app.create_app`:
`init_plugins` before `init_views`). Left alone, with a warning, if Airflow's function no longer
has the parameters this was written against (Airflow 3.3.2).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

log = logging.getLogger(__name__)

# The parameters of the dependency action_logging() returns in Airflow 3.3.2.
EXPECTED_PARAMETERS = ("request", "session", "user")


class _CommitLater:
    """The request's session as Airflow's log_action sees it: `commit()` is noted, not run."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.commit_asked = False

    def commit(self) -> None:
        self.commit_asked = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def commit_in_thread(log_action: Any) -> Any:
    """An async dependency with log_action's parameters that runs it on a session whose commit is
    deferred, then commits that session in the thread pool."""
    from starlette.concurrency import run_in_threadpool

    @functools.wraps(log_action)
    async def log_action_committed_in_a_thread(**kwargs: Any) -> None:
        session = kwargs["session"]
        deferred = _CommitLater(session)
        await log_action(**{**kwargs, "session": deferred})
        if deferred.commit_asked:
            await run_in_threadpool(session.commit)

    # FastAPI reads a dependency's parameters (and their Depends) from its signature; evaluated here,
    # since Airflow's module writes them as strings that this module's globals could not resolve.
    log_action_committed_in_a_thread.__signature__ = inspect.signature(  # type: ignore[attr-defined]
        log_action, eval_str=True)
    return log_action_committed_in_a_thread


def install() -> bool:
    """Make `airflow.api_fastapi.logging.decorators.action_logging` commit in the thread pool.

    Returns whether it is installed (already installed: True). Must run before the core routes are
    imported: they call action_logging() when their module loads.
    """
    from airflow.api_fastapi.logging import decorators

    original = decorators.action_logging
    if getattr(original, "smgt_commit_in_thread", False):
        return True
    parameters = tuple(inspect.signature(original()).parameters)
    if parameters != EXPECTED_PARAMETERS:
        log.warning("smgt: Airflow's action_logging dependency takes %s, not %s; its commit is left on the "
                    "event loop", parameters, EXPECTED_PARAMETERS)
        return False

    @functools.wraps(original)
    def action_logging(event: str | None = None) -> Any:
        return commit_in_thread(original(event))

    action_logging.smgt_commit_in_thread = True  # type: ignore[attr-defined]
    decorators.action_logging = action_logging
    log.info("smgt: Airflow's audit log commits in the thread pool, off the event loop")
    return True
