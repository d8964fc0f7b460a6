"""The emulator's durable state: labeling jobs, their finished data objects and work teams, in SQLite.

Ground Truth keeps a job (its request, status, counters, output location) and its name forever; so
does this file. Every change is committed before the SageMaker call that made it returns, so a
SIGKILL of the emulator loses nothing it acknowledged. After a restart `JobStore` and
`WorkteamStore` load from here, and running jobs resume from the data objects not yet recorded.

Tables:
    jobs     one row per labeling job ever created; `name_key` (lower-case name) is the primary key,
             so a name is taken once, forever, case-insensitively (GT's rule)
    objects  one row per finished data object of a job: its output-manifest line (GT writes one for a
             failed object too, naming the failure) and, when it failed, why
    teams    one row per work team (the CreateWorkteam request)
    resource_calls  every SNS/SQS call that made, changed or deleted a topic, subscription or queue,
             in order: moto keeps them in memory only, so the emulator replays them on start

`path=None` keeps everything in memory (a throw-away emulator, e.g. a test of one API call).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
create table if not exists jobs (
    name_key text primary key,
    name text not null,
    arn text not null,
    account text not null,
    request text not null,          -- the CreateLabelingJob request (JSON)
    spec text not null,             -- what validation resolved it to (JSON, see JobSpec.to_dict)
    workforce text not null,        -- which workforce labels it: simulated | labelstudio
    workforce_state text not null default '{}',  -- the workforce's own ids (e.g. its project), JSON
    status text not null,
    failure_reason text,
    human_labeled integer not null default 0,
    failed integer not null default 0,
    created real not null,
    modified real not null
);
create table if not exists objects (
    name_key text not null references jobs(name_key),
    idx integer not null,           -- dataset object id (line number in the input manifest, from 0)
    line text not null,             -- its output-manifest line (JSON)
    failure text,                   -- why it failed, when it did (counted as failed, not labeled)
    primary key (name_key, idx)
);
create table if not exists teams (
    arn text primary key,
    request text not null,
    region text not null,
    created real not null
);
create table if not exists resource_calls (
    seq integer primary key autoincrement,
    request text not null,          -- the WSGI environ keys moto reads (JSON)
    body blob not null
);
"""


class NameTaken(Exception):
    """A labeling job with this name (ignoring case) was created before."""


class StateStore:
    """Thread-safe access to the state file (one connection, serialized by a lock)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL: readers never block the writer; synchronous=FULL: a commit is on disk when it returns,
        # so an acknowledged CreateLabelingJob survives even a machine crash.
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("begin immediate")
            try:
                yield self._db
            except BaseException:
                self._db.execute("rollback")
                raise
            self._db.execute("commit")

    # ------------------------------------------------------------ jobs

    def insert_job(self, row: dict[str, Any]) -> None:
        """Insert a new job row; NameTaken if the name (any case) was ever used."""
        try:
            with self._tx() as db:
                db.execute(
                    "insert into jobs (name_key, name, arn, account, request, spec, workforce, workforce_state,"
                    " status, failure_reason, human_labeled, failed, created, modified)"
                    " values (:name_key, :name, :arn, :account, :request, :spec, :workforce, :workforce_state,"
                    " :status, :failure_reason, :human_labeled, :failed, :created, :modified)",
                    {**row, "name_key": row["name"].lower(), "request": json.dumps(row["request"]),
                     "spec": json.dumps(row["spec"]), "workforce_state": json.dumps(row.get("workforce_state") or {})},
                )
        except sqlite3.IntegrityError:
            raise NameTaken(row["name"]) from None

    def update_job(self, name: str, **fields: Any) -> None:
        """Set columns of one job (status, failure_reason, modified, workforce_state, ...)."""
        if "workforce_state" in fields:
            fields["workforce_state"] = json.dumps(fields["workforce_state"])
        columns = ", ".join(f"{key} = :{key}" for key in fields)
        with self._tx() as db:
            db.execute(f"update jobs set {columns} where name_key = :name_key",  # noqa: S608 - keys are ours
                       {**fields, "name_key": name.lower()})

    def jobs(self) -> list[dict[str, Any]]:
        """Every job row, oldest first, with JSON columns decoded."""
        with self._lock:
            rows = self._db.execute("select * from jobs order by created, name_key").fetchall()
        out = []
        for row in rows:
            item = dict(row)
            for key in ("request", "spec", "workforce_state"):
                item[key] = json.loads(item[key])
            out.append(item)
        return out

    # ------------------------------------------------------------ data objects

    def record_object(self, name: str, index: int, line: dict[str, Any], *, failure: str | None = None,
                      modified: float) -> bool:
        """Record a finished data object (labeled, or failed when `failure` says why) and bump the
        job's counters in one transaction.

        Returns False (and changes nothing) when the object was recorded before: a data object is
        labeled once, even if a resumed workforce hands it in again.
        """
        with self._tx() as db:
            cur = db.execute(
                "insert or ignore into objects (name_key, idx, line, failure) values (?, ?, ?, ?)",
                (name.lower(), index, json.dumps(line, separators=(",", ":")), failure),
            )
            if cur.rowcount == 0:
                return False
            column = "failed" if failure is not None else "human_labeled"
            db.execute(f"update jobs set {column} = {column} + 1, modified = ? where name_key = ?",  # noqa: S608
                       (modified, name.lower()))
        return True

    def finished_indexes(self, name: str) -> set[int]:
        with self._lock:
            rows = self._db.execute("select idx from objects where name_key = ?", (name.lower(),)).fetchall()
        return {row[0] for row in rows}

    def output_lines(self, name: str) -> dict[int, dict[str, Any]]:
        """Output-manifest lines of the finished data objects (labeled or failed), by index."""
        with self._lock:
            rows = self._db.execute("select idx, line from objects where name_key = ? order by idx",
                                    (name.lower(),)).fetchall()
        return {row[0]: json.loads(row[1]) for row in rows}

    def failures(self, name: str) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("select idx, failure from objects where name_key = ? and failure is not null"
                                    " order by idx", (name.lower(),)).fetchall()
        return {row[0]: row[1] for row in rows}

    # ------------------------------------------------------------ work teams

    def insert_team(self, arn: str, request: dict[str, Any], region: str, created: float) -> None:
        with self._tx() as db:
            db.execute("insert or replace into teams (arn, request, region, created) values (?, ?, ?, ?)",
                       (arn, json.dumps(request), region, created))

    # ------------------------------------------------------------ SNS / SQS resources

    def record_resource_call(self, request: dict[str, str], body: bytes) -> None:
        with self._tx() as db:
            db.execute("insert into resource_calls (request, body) values (?, ?)", (json.dumps(request), body))

    def resource_calls(self) -> list[tuple[dict[str, str], bytes]]:
        """What record_resource_call recorded, oldest first."""
        with self._lock:
            rows = self._db.execute("select request, body from resource_calls order by seq").fetchall()
        return [(json.loads(row["request"]), bytes(row["body"])) for row in rows]

    def teams(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("select * from teams order by created").fetchall()
        return [{**dict(row), "request": json.loads(row["request"])} for row in rows]
