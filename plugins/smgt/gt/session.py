"""One botocore data loader per process for every AWS hook's boto3 session, and its warm-up.

Every Airflow AWS hook creates its own boto3 session, and each session its own botocore loader, so
each client re-reads and re-parses its service model (sagemaker's is 377 KB of gzipped JSON; a
client cost 0.11-0.26 s of CPU on the development machine, 0.02 s with a loader that had the model
already). In the load test (bench/load_test.py) client creation was 31 % of the Celery worker's CPU.

- :class:`SharedLoaderSessionFactory` is the amazon provider's documented extension point
  (``[aws] session_factory``, https://airflow.apache.org/docs/apache-airflow-providers-amazon/stable/connections/aws.html#session-factory):
  the provider's own sessions, with one process-wide loader, as the provider already does for its
  async sessions (its ``base_aws._loader``; botocore issue #3078).
- :func:`warm_up` loads the models of the services a batch calls into that loader and imports the
  provider's AWS operators and sensors, in a process that forks the task processes (``smgt.warm``,
  which also imports the rest: the Celery worker before its pool starts, a LocalExecutor's
  scheduler), so a task starts with them.

Only static API models are shared between sessions: credentials, regions and endpoints stay per
session; hooks with the same connection settings in one thread share a session. Import
the provider's ``base_aws`` before this module (it imports this module when configured, at its
end; importing this one first would make that a circular import).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

# The services a batch's tasks call: S3 (manifests), SageMaker (labeling jobs), SNS (the batch's
# message), STS (an assumed role).
SERVICES = ("s3", "sagemaker", "sns", "sts")


class _UniquePaths(list):
    """Search paths that ignore a path they have: every boto3 session appends its data folder to its
    loader's paths, which would grow without end on a shared loader."""

    def append(self, path: Any) -> None:
        if path not in self:
            super().append(path)


def _shared_loader() -> botocore.loaders.Loader:
    loader = botocore.loaders.create_loader()
    loader._search_paths = _UniquePaths(loader.search_paths)  # the list its search_paths property returns
    return loader


LOADER = _shared_loader()


# Sessions a thread keeps for reuse (see SharedLoaderSessionFactory): a few connections' worth.
SESSIONS_PER_THREAD = 8
_thread = threading.local()


class SharedLoaderSessionFactory(BaseSessionFactory):
    """The provider's session factory, with boto3 sessions that share one botocore loader
    (``LOADER``) per process, and one session per thread for hooks with the same connection
    settings. Set ``[aws] session_factory = smgt.gt.session.SharedLoaderSessionFactory``.

    A boto3 session cost ~30 ms of CPU here (botocore registers its ~200 event handlers in each),
    and every hook made its own: a task's S3 storage, SageMaker hook and SNS publish made three. A
    session holds settings, not connections, and boto3 documents sessions as unsafe to share between
    threads and processes (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/session.html#multithreading-or-multiprocessing-with-sessions),
    hence per thread of a process; keyed by every session argument (credentials, region, profile), so changed
    credentials get a new session; the least recently used beyond SESSIONS_PER_THREAD are dropped.
    """

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        try:
            key: tuple | None = tuple(sorted(session_kwargs.items()))
            hash(key)
        except TypeError:  # an unhashable argument: no reuse
            key = None
        if getattr(_thread, "pid", None) != os.getpid():  # a fork's copy of its parent's thread
            _thread.pid, _thread.sessions = os.getpid(), OrderedDict()
        sessions: OrderedDict[tuple, boto3.session.Session] = _thread.sessions
        if key is not None and key in sessions:
            sessions.move_to_end(key)
            return sessions[key]
        core = botocore.session.get_session()
        core.register_component("data_loader", LOADER)
        session = boto3.session.Session(botocore_session=core, **session_kwargs)
        if key is not None:
            sessions[key] = session
            while len(sessions) > SESSIONS_PER_THREAD:
                sessions.popitem(last=False)
        return session


def warm_up() -> None:
    """Load `SERVICES`' models (and their endpoint rules) into ``LOADER`` and import the amazon
    provider's operators and sensors, so that processes forked from this one have them (the rest of
    what a task imports: smgt.warm). Costs ~1 s of CPU once."""
    import airflow.providers.amazon.aws.operators.base_aws  # noqa: F401
    import airflow.providers.amazon.aws.sensors.base_aws  # noqa: F401

    core = botocore.session.get_session()
    core.register_component("data_loader", LOADER)
    session = boto3.session.Session(botocore_session=core, aws_access_key_id="warm-up",
                                    aws_secret_access_key="warm-up", region_name="us-east-1")
    for service in SERVICES:
        # A client loads the service model, its endpoint rule set and the partitions; no call is made.
        session.client(service, endpoint_url="http://127.0.0.1:9")
