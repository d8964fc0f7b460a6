"""`LocalGroundTruth`: the emulator as an object (tests, the bench, `smgt-local serve`).

    with LocalGroundTruth(s3=S3Store(url, key, secret), port=0, task_seconds=0.0, seed=0, state_dir=d) as emu:
        sm = emu.client("sagemaker")
        ...

Seams: the API (server.py: SageMaker actions + moto for SNS/SQS/Cognito), the lifecycle of a job
(lifecycle.py), who labels (workforce.py: simulated or Label Studio), and storage: S3 on the
S3-compatible store given as `s3` (SeaweedFS in every deployment: smgt.local.seaweedfs), job and
team records in `state_dir/gt.sqlite3` (in memory without a state dir).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from werkzeug.serving import WSGIRequestHandler, make_server

from smgt.gt import events
from smgt.settings import LOCAL_ACCOUNT_ID, Settings, get_settings

from . import demo
from .bootstrap import Bootstrapped, bootstrap, cognito_problem, parse_work_team_members
from .faults import Faults, FaultState
from .jobs import TERMINAL, JobStore, LabelingJob
from .lifecycle import Lifecycle, Timing, worker_from_cognito
from .outputs import Worker
from .s3io import S3
from .server import Dispatcher, Stats, replay_calls
from .simulated import SimulatedWorkforce
from .state import StateStore
from .validation import JobSpec, validate_create
from .workforce import Workforce, Workforces
from .workteams import WorkteamStore

log = logging.getLogger(__name__)

STATE_FILE = "gt.sqlite3"
# GT's labeling-job state-change events reach triggers through this rule and queue (smgt.gt.events),
# as on AWS, where a deployment creates both (README: "Events instead of polling").
EVENTS_RULE_NAME = "smgt-workflows-gt-labeling-job-state-change"
EVENTS_QUEUE_NAME = "smgt-workflows-gt-events"
# After a restart the emulator publishes again the events of jobs that ended this recently: moto keeps
# queues in memory, so events still unread when the emulator stopped were lost with it.
REPUBLISH_WITHIN_SECONDS = 900.0


def events_queue_url(endpoint_url: str) -> str:
    """The emulator's labeling-job events queue (moto's queue URLs are endpoint/account/name)."""
    return f"{endpoint_url}/{LOCAL_ACCOUNT_ID}/{EVENTS_QUEUE_NAME}"


@dataclass(frozen=True)
class S3Store:
    """An S3-compatible store the emulator (and everyone it hands its env to) uses for S3."""

    endpoint_url: str
    access_key: str
    secret_key: str


def aws_env(endpoint_url: str, *, region: str, conn_id: str, s3: S3Store) -> dict[str, str]:
    """Environment for Airflow processes and boto3 users of a local deployment.

    S3 goes to the S3 store through per-service endpoints: the Airflow connection's
    `service_config.s3.endpoint_url` (amazon provider) and boto3's `AWS_ENDPOINT_URL_S3`; every
    other service (SageMaker, SNS, SQS, Cognito) to the emulator at `endpoint_url`. One key pair
    serves both (the S3 store checks it, the emulator accepts any).
    """
    access_key, secret_key = s3.access_key, s3.secret_key
    # Standard retries (10 attempts, backoff up to 20 s) ride out a restart of the emulator or the S3
    # store under a running task or trigger, as they ride out throttling on AWS.
    extra: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": region,
                             "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 10}}}
    env = {"AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": secret_key,
           "AWS_DEFAULT_REGION": region, "AWS_ENDPOINT_URL": endpoint_url, "SMGT_REGION": region,
           "AWS_ENDPOINT_URL_S3": s3.endpoint_url,
           # Waiting triggers wake on the emulator's labeling-job events instead of polling.
           "SMGT_EVENTS_QUEUE_URL": events_queue_url(endpoint_url)}
    extra["service_config"] = {"s3": {"endpoint_url": s3.endpoint_url}}
    conn = {"conn_type": "aws", "login": access_key, "password": secret_key, "extra": extra}
    env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env


class _KeepAliveHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps connections open between calls (botocore pools them); with werkzeug's default
    # HTTP/1.0 every call pays a new TCP connection.
    protocol_version = "HTTP/1.1"


class LocalGroundTruth:
    def __init__(self, port: int = 0, task_seconds: float = 0.0, seed: int = 0,
                 faults: Faults | dict[str, Any] | str | Path | None = None, *, s3: S3Store, host: str = "127.0.0.1",
                 init_seconds: float = 0.0, stop_seconds: float | None = None,
                 settings: Settings | None = None, state_dir: str | Path | None = None,
                 workforce: Workforce | None = None, clock_origin: float | None = None,
                 work_team_members: Mapping[str, Sequence[str]] | None = None) -> None:
        """`s3`: the S3 store every S3 call goes to (GT reads inputs and writes outputs there).
        `state_dir`: where the job/team records live (None: in memory, lost on stop).
        `workforce`: who labels (None: the simulated workforce); modalities it cannot label fall back
        to the simulated one. `clock_origin`: fixed epoch seconds for output timestamps (see Timing).
        `work_team_members`: each work team's user names (`bootstrap.parse_work_team_members`;
        default `bootstrap.USERS`). Raises ValueError for members it cannot use.
        """
        self.host = host
        self.port = port
        self.seed = seed
        self.settings = settings or get_settings()
        self.region = self.settings.region
        self.account = LOCAL_ACCOUNT_ID
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.s3_store = s3
        self._chosen_workforce = workforce
        self.work_team_members = parse_work_team_members(
            dict(work_team_members) if work_team_members is not None else None, where="work_team_members")
        if isinstance(faults, str | Path):
            faults = Faults.load(faults)
        self.fault_state = FaultState(seed=seed)
        self.fault_state.set(faults)
        self.timing = Timing(task_seconds=task_seconds, init_seconds=init_seconds,
                             stop_seconds=min(task_seconds, 2.0) if stop_seconds is None else stop_seconds,
                             clock_origin=clock_origin)
        self.stats = Stats()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.resources: Bootstrapped | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._events: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._publisher: threading.Thread | None = None
        self.events_published = 0
        # DescribeLabelingJob calls per (lower-case) job name: what waiting on each job cost.
        self.describe_calls: Counter[str] = Counter()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> LocalGroundTruth:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # Cognito ids derived from names, not random: work teams in the state file keep pointing at
        # the pool and app client that bootstrap re-creates after a restart.
        os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY", "HASH")
        os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY", "HASH")
        self.store = StateStore(self.state_dir / STATE_FILE if self.state_dir else None)
        app = Dispatcher(handlers={}, moto_app=DomainDispatcherApplication(create_backend_app),
                         faults=self.fault_state, stats=self.stats, default_region=self.region,
                         extra_admin={"/_smgt/jobs": self._job_statuses},
                         record_call=self.store.record_resource_call)
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=_KeepAliveHandler)
        self.port = self._server.server_port
        # Topics, subscriptions and queues made before a restart (the users' own too), made again
        # before anyone is served. Their messages not yet received are not kept.
        calls = self.store.resource_calls()
        if calls:
            replayed = replay_calls(app.moto_app, calls, f"{self.host}:{self.port}")
            log.info("made %d of %d recorded SNS/SQS topic, subscription and queue calls again", replayed, len(calls))
        self._thread = threading.Thread(target=self._server.serve_forever, name="smgt-local-server", daemon=True)
        self._thread.start()

        self.s3 = S3(self._internal("s3"))
        simulated = SimulatedWorkforce(self.s3, task_seconds=self.timing.task_seconds,
                                       init_seconds=self.timing.init_seconds)
        self.workforces = Workforces(self._chosen_workforce or simulated, simulated)
        self.teams = WorkteamStore(account=self.account, store=self.store,
                                   portal_url=self.workforces.chosen.portal_url(),
                                   cognito_check=lambda member: cognito_problem(self._internal("cognito-idp"), member))
        self.lifecycle = Lifecycle(s3=self.s3, timing=self.timing, faults=self.fault_state, seed=self.seed,
                                   region=self.region, workers_for=self._workers_for, issuer="",
                                   workforces=self.workforces)
        self.jobs = JobStore(account=self.account, validate=self._validate, start=self.lifecycle.start,
                             store=self.store, choose_workforce=self._choose_workforce,
                             on_status=self._job_status_changed)
        running = self.jobs.load()
        app.handlers.update({
            "CreateLabelingJob": self.jobs.create,
            "DescribeLabelingJob": self._describe_job,
            "ListLabelingJobs": lambda r, _region: self.jobs.list(r),
            "StopLabelingJob": lambda r, _region: self.jobs.stop(r.get("LabelingJobName")),
            "ListLabelingJobsForWorkteam": lambda r, _region: self.jobs.list_for_workteam(r, self.teams.exists),
            "CreateWorkteam": self.teams.create,
            "DescribeWorkteam": self.teams.describe,
            "ListWorkteams": lambda r, _region: self.teams.list(r),
        })
        self.resources = bootstrap(self.client, self.teams, self.settings, self.work_team_members)
        self.lifecycle.issuer = f"https://cognito-idp.{self.region}.amazonaws.com/{self.resources.user_pool_id}"
        self._setup_events()
        recent = time.time() - REPUBLISH_WITHIN_SECONDS
        for job in self.jobs.all():
            if job.status in TERMINAL and job.modified >= recent:
                self._job_status_changed(job)
        for job in running:  # after bootstrap: their workers are Cognito users again
            log.info("resuming labeling job %s (%s, %d of %d data objects finished)", job.name, job.status,
                     job.human_labeled + job.failed, job.total)
            self.lifecycle.start(job)
        return self

    def stop(self) -> None:
        if self._publisher is not None:  # publish what is queued while the server still answers
            self._events.put(None)
            self._publisher.join(timeout=10)
            self._publisher = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if getattr(self, "jobs", None) is not None:
            self.lifecycle.shutdown(self.jobs.all())  # job threads exit; the state file stays as it is
            self.wait_idle(timeout=10)
        if getattr(self, "store", None) is not None:
            self.store.close()

    def __enter__(self) -> LocalGroundTruth:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ public helpers

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def status_queue_url(self) -> str:
        assert self.resources is not None, "start() the emulator first"
        return self.resources.queue_url

    @property
    def events_queue_url(self) -> str:
        """The SQS queue GT's labeling-job state-change events are delivered to (SMGT_EVENTS_QUEUE_URL)."""
        return events_queue_url(self.endpoint_url)

    @property
    def access_key(self) -> str:
        # One key pair for everything: the S3 store checks it, the emulator accepts any.
        return self.s3_store.access_key

    @property
    def secret_key(self) -> str:
        return self.s3_store.secret_key

    @property
    def s3_endpoint_url(self) -> str:
        return self.s3_store.endpoint_url

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for `service` on this deployment (S3 on the S3 store, the rest here)."""
        # Standard retries (10 attempts) so callers ride out injected throttling, as on AWS.
        kwargs.setdefault("config", Config(retries={"mode": "standard", "max_attempts": 10}))
        kwargs.setdefault("region_name", self.region)
        endpoint = self.s3_endpoint_url if service == "s3" else self.endpoint_url
        return boto3.session.Session().client(
            service, endpoint_url=endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, **kwargs)

    def env(self) -> dict[str, str]:
        """Environment for Airflow processes (and any boto3 user) to talk to this deployment."""
        return aws_env(self.endpoint_url, region=self.region, conn_id=self.settings.aws_conn_id, s3=self.s3_store)

    def set_faults(self, faults: Faults | dict[str, Any] | None = None, **kwargs: Any) -> Faults:
        """Replace the faults: `set_faults({"throttle_rate": 0.5})` or `set_faults(throttle_rate=0.5)`."""
        return self.fault_state.set(faults if faults is not None else kwargs)

    def upload_demo_data(self, n_frames: int = 30) -> dict[str, Any]:
        return demo.upload_demo_data(self.s3, self.settings.input_bucket, n_frames=n_frames, seed=self.seed)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Join the threads of all jobs (tests: wait for every job to reach a terminal state)."""
        for thread in list(self.lifecycle.threads):
            thread.join(timeout)

    # ------------------------------------------------------------ internals

    def _internal(self, service: str) -> Any:
        """A shared client for the emulator's own calls (creating a boto3 client costs ~50 ms)."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = self.client(service, config=Config(
                    retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=50))
            return self._clients[service]

    def _describe_job(self, request: dict[str, Any], _region: str) -> dict[str, Any]:
        job = self.jobs.get(request.get("LabelingJobName"))
        self.describe_calls[job.name.lower()] += 1
        return job.describe()

    def _setup_events(self) -> None:
        """The EventBridge rule that sends GT's labeling-job events to the events queue, as a
        deployment on AWS creates it (moto delivers PutEvents entries that match a rule to its
        SQS targets); then start publishing. Idempotent, like bootstrap."""
        sqs, bridge = self._internal("sqs"), self._internal("events")
        url = sqs.create_queue(QueueName=EVENTS_QUEUE_NAME)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        bridge.put_rule(Name=EVENTS_RULE_NAME, EventPattern=json.dumps(events.EVENT_PATTERN), State="ENABLED",
                        Description="Ground Truth labeling job state changes -> smgt triggers")
        bridge.put_targets(Rule=EVENTS_RULE_NAME, Targets=[{"Id": "smgt-gt-events-queue", "Arn": arn}])
        if self._publisher is None:
            self._publisher = threading.Thread(target=self._publish_events, name="smgt-gt-events", daemon=True)
            self._publisher.start()

    def _job_status_changed(self, job: LabelingJob) -> None:
        # GT sends an event when a job becomes Completed, Failed or Stopped (smgt.gt.events); called
        # under the job's lock, so the event is put on the bus by the publisher thread.
        if job.status in events.EVENT_STATUSES and self._publisher is not None:
            self._events.put((job.arn, job.status))

    def _publish_events(self) -> None:
        while (item := self._events.get()) is not None:
            arn, status = item
            try:
                response = self._internal("events").put_events(Entries=[events.put_events_entry(arn, status)])
                if response.get("FailedEntryCount"):
                    raise RuntimeError(response["Entries"])
                self.events_published += 1
            except Exception:  # a lost event only delays the hand-off (triggers keep a fallback poll)
                log.exception("could not publish the %s event of %s", status, arn)

    def _validate(self, request: dict[str, Any], region: str):  # -> JobSpec
        return validate_create(request, region=region, s3=self.s3, workteam_exists=self.teams.exists)

    def _workers_for(self, team_arn: str) -> list[Worker]:
        team = self.teams.by_arn(team_arn)
        if team is None:
            return []
        idp = self._internal("cognito-idp")
        workers: list[Worker] = []
        for member in team.members:
            cognito = member["CognitoMemberDefinition"]
            users = idp.list_users_in_group(UserPoolId=cognito["UserPool"], GroupName=cognito["UserGroup"])["Users"]
            workers.extend(worker_from_cognito(u, self.region) for u in users)
        return sorted(workers, key=lambda w: w.username)

    def _choose_workforce(self, spec: JobSpec) -> str:
        return self.workforces.for_modality(spec.modality).name

    def _job_statuses(self) -> dict[str, Any]:
        return {j.name: j.status for j in self.jobs.all()}
