"""A thin, typed REST client for Label Studio 1.23.2 on httpx: dicts in, dicts out, no Ground Truth knowledge.

    ls = LabelStudioClient("http://127.0.0.1:8080", admin_token)
    project = ls.create_project("Batch 1", label_config=xml, maximum_annotations=1)
    task_ids = ls.import_tasks(project["id"], [{"data": {"image": "s3://b/k.jpg"}, "predictions": [...]}])
    ls.with_token(member_token).create_annotation(task_ids[0], result=[...], lead_time=12.5)
    for task in ls.list_tasks(project["id"]): task["annotations"]  # with was_cancelled, completed_by, ...

Why not label-studio-sdk: it needs pyjwt<2.14 and cannot be installed next to Airflow in our venv.
Every endpoint and payload below was checked against the 1.23.2 source in `.venv-labelstudio`
(`label_studio/*/urls.py`, `*/api.py`, serializers) and against a running server (tests/local/
test_labelstudio_server.py); the public reference is https://api.labelstud.io/api-reference/.
Auth is the legacy token: `Authorization: Token <token>`.

Retries (tenacity) ride out a Label Studio restart: a refused/failed connection is retried for every
method, since the request never reached the server; read errors, timeouts and 5xx are retried only
for GET/PATCH/PUT/DELETE. A POST that failed after it was sent (e.g. Label Studio was killed while
saving an annotation) is not repeated: it may have been committed, so the caller must look before
re-posting. Errors are `LabelStudioApiError` naming method, endpoint, status and response text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

JSON = dict[str, Any]
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TEXT_LIMIT = 2000


class LabelStudioApiError(RuntimeError):
    """A Label Studio call failed. `status_code` is None when no response came (connection failed)."""

    def __init__(self, method: str, path: str, status_code: int | None, text: str) -> None:
        self.method = method
        self.path = path
        self.status_code = status_code
        self.text = text
        where = f"{method} {path}"
        super().__init__(f"Label Studio {where} -> {status_code}: {text[:_TEXT_LIMIT]}" if status_code is not None
                         else f"Label Studio {where} failed: {text[:_TEXT_LIMIT]}")

    def json(self) -> Any:
        """The error body as JSON (1.23.2 sends `{"detail": ..., "validation_errors": {field: [...]}}`), else None."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class PredictionsDropped(LabelStudioApiError):
    """An import made its tasks (`task_ids`) but stored fewer predictions than it was sent."""

    def __init__(self, path: str, task_ids: list[int], text: str) -> None:
        super().__init__("POST", path, 201, text)
        self.task_ids = task_ids


class LabelStudioClient:
    """Label Studio REST API at `url` (e.g. `http://127.0.0.1:8080`) as the user owning `token`.

    timeout: seconds per request (connect is capped at 5 s). retry_seconds: how long retryable
    failures are retried (exponential backoff 0.25 s .. 2 s); 0 disables retries.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0, retry_seconds: float = 60.0) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if not isinstance(token, str) or not token:
            raise ValueError("token must be a non-empty string")
        if retry_seconds < 0:
            raise ValueError(f"retry_seconds must be >= 0, got {retry_seconds!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Token {token}"},
                                  timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)))

    def with_token(self, token: str) -> LabelStudioClient:
        """A client for the same server acting as another user (e.g. a scripted annotator)."""
        return LabelStudioClient(self.url, token, timeout=self.timeout, retry_seconds=self.retry_seconds)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    # -- transport --------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None) -> Any:
        """One API call with retries; returns the parsed JSON body (None for an empty body, e.g. 204).

        Raises LabelStudioApiError for any status >= 400 or when the server stays unreachable for
        `retry_seconds`.
        """
        method = method.upper()
        idempotent = method in _IDEMPOTENT

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                return True  # nothing was sent
            if isinstance(exc, httpx.TransportError):
                return idempotent
            return isinstance(exc, _ServerError) and idempotent

        def attempt() -> httpx.Response:
            response = self._http.request(method, path, params=params, json=json_body)
            if response.status_code >= 500:
                raise _ServerError(response)
            return response

        retrying = Retrying(retry=retry_if_exception(retryable), stop=stop_after_delay(self.retry_seconds),
                            wait=wait_exponential(multiplier=0.25, max=2.0), reraise=True)
        try:
            response = retrying(attempt)
        except _ServerError as exc:
            response = exc.response
        except httpx.HTTPError as exc:
            raise LabelStudioApiError(method, path, None, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise LabelStudioApiError(method, path, response.status_code, response.text)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise LabelStudioApiError(method, path, response.status_code,
                                      f"response is not JSON: {response.text}") from exc

    def health(self) -> bool:
        """`GET /health` answers `{"status": "UP"}` (one try, no retries)."""
        try:
            response = self._http.get("/health")
            return response.status_code == 200 and response.json().get("status") == "UP"
        except (httpx.HTTPError, ValueError):
            return False

    # -- users ------------------------------------------------------------------------------------

    def current_user(self) -> JSON:
        """`GET /api/current-user/whoami`: `{id, email, first_name, username, active_organization, ...}`."""
        return self.request("GET", "/api/current-user/whoami")

    def list_users(self) -> list[JSON]:
        """`GET /api/users/`: every user of the caller's organization (`id`, `email`, `first_name`, ...); not paginated."""
        return self.request("GET", "/api/users/")

    # -- projects ---------------------------------------------------------------------------------

    def create_project(self, title: str, *, label_config: str | None = None, description: str | None = None,
                       expert_instruction: str | None = None, show_instruction: bool | None = None,
                       maximum_annotations: int | None = None, **fields: Any) -> JSON:
        """`POST /api/projects/` -> the project (`id`, `title`, `label_config`, `parsed_label_config`, ...).

        title: 3..50 characters (Label Studio checks; titles need not be unique). expert_instruction:
        HTML shown to labelers (before labeling when show_instruction). maximum_annotations: how many
        submitted annotations finish a task (LS's overlap). Other Project fields go in `fields`
        (e.g. show_skip_button, sampling, color, min_annotations_to_start_training).
        """
        if not isinstance(title, str) or not title.strip():
            raise ValueError("title must be a non-empty string")
        body = {"title": title, **_present(label_config=label_config, description=description,
                                            expert_instruction=expert_instruction,
                                            show_instruction=show_instruction,
                                            maximum_annotations=maximum_annotations), **fields}
        return self.request("POST", "/api/projects/", json_body=body)

    def get_project(self, project_id: int) -> JSON:
        """`GET /api/projects/{id}/`, with progress counters: `task_number`, `num_tasks_with_annotations`,
        `finished_task_number`, `total_annotations_number`, `skipped_annotations_number`."""
        return self.request("GET", f"/api/projects/{_id('project_id', project_id)}/")

    def list_projects(self, title_contains: str | None = None) -> list[JSON]:
        """`GET /api/projects/` (all pages; `title` filters case-insensitively by substring), newest first."""
        params = {"page_size": 100, **_present(title=title_contains)}
        return list(self._pages("/api/projects/", params))

    def find_project(self, title: str) -> JSON | None:
        """The project titled exactly `title`, or None. ValueError if several have that title."""
        found = [p for p in self.list_projects(title_contains=title) if p.get("title") == title]
        if len(found) > 1:
            raise ValueError(f"{len(found)} Label Studio projects are titled {title!r}: ids {[p['id'] for p in found]}")
        return found[0] if found else None

    def update_project(self, project_id: int, **fields: Any) -> JSON:
        """`PATCH /api/projects/{id}/` with any Project fields (title, label_config, expert_instruction, ...).

        Label Studio refuses a label_config that would drop labels already used in annotations."""
        if not fields:
            raise ValueError("update_project needs at least one field")
        return self.request("PATCH", f"/api/projects/{_id('project_id', project_id)}/", json_body=fields)

    def delete_project(self, project_id: int) -> None:
        """`DELETE /api/projects/{id}/`: the project with its tasks, annotations and storages."""
        self.request("DELETE", f"/api/projects/{_id('project_id', project_id)}/")

    def validate_label_config(self, label_config: str) -> list[str]:
        """`POST /api/projects/validate/`: [] when the config is valid, else Label Studio's messages
        (e.g. "Validation failed on : 'value' is a required property")."""
        if not isinstance(label_config, str) or not label_config.strip():
            raise ValueError("label_config must be a non-empty XML string")
        try:
            self.request("POST", "/api/projects/validate/", json_body={"label_config": label_config})
        except LabelStudioApiError as exc:
            body = exc.json()
            if exc.status_code != 400 or not isinstance(body, dict):
                raise
            errors = body.get("label_config") or body.get("validation_errors", {}).get("label_config") or [exc.text]
            return [str(e) for e in errors]
        return []

    # -- tasks and annotations --------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: Iterable[Mapping[str, Any]]) -> list[int]:
        """`POST /api/projects/{id}/import?return_task_ids=true` -> the new task ids, in input order.

        Each task is `{"data": {...}, "predictions": [{"model_version": str, "result": [...]}]?, "meta"?}`
        ("data" is required here: a dict without it would be taken as data as a whole). Import is
        synchronous in the Community edition; a failed import creates nothing. One request may carry
        at most 250K tasks / 200 MB
        (https://api.labelstud.io/api-reference/api-reference/projects/import-tasks).
        """
        pid = _id("project_id", project_id)
        items = [dict(t) for t in tasks]
        for i, task in enumerate(items):
            if not isinstance(task.get("data"), dict):
                raise ValueError(f"tasks[{i}].data must be a dict (the task's data fields)")
            if "predictions" in task and not isinstance(task["predictions"], list):
                raise ValueError(f"tasks[{i}].predictions must be a list")
        if not items:
            return []
        body = self.request("POST", f"/api/projects/{pid}/import", params={"return_task_ids": "true"},
                            json_body=items)
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or len(ids) != len(items):
            raise LabelStudioApiError("POST", f"/api/projects/{pid}/import", 201,
                                      f"expected {len(items)} task_ids, got {json.dumps(body)[:500]}")
        # Label Studio can drop predictions while still answering 201: invalid ones (tasks/serializers.py
        # add_predictions), or all of them when its SQLite database was locked by a concurrent write
        # (measured: "prediction_count": 0 after a 3 s wait). Say so, with the tasks that were made.
        sent = sum(len(t.get("predictions") or []) for t in items)
        if sent and body.get("prediction_count") != sent:
            raise PredictionsDropped(f"/api/projects/{pid}/import", ids,
                                     f"{sent} predictions sent, {body.get('prediction_count')} stored: "
                                     f"{json.dumps(body)[:1000]}")
        return ids

    def iter_tasks(self, project_id: int, *, page_size: int = 100) -> Iterator[JSON]:
        """`GET /api/tasks/?project={id}&fields=all`, page by page, in id order.

        Each task: `id`, `data` (s3:// URIs already resolved to `/tasks/{id}/resolve/?fileuri=...`),
        `annotations` (all, skipped ones too: `id`, `result`, `was_cancelled`, `completed_by` (user id),
        `lead_time` (s), `created_at`, `updated_at`, `ground_truth`, ...), `predictions`, `drafts`,
        `annotators`, `total_annotations`, `cancelled_annotations`, `is_labeled`, `created_at`, `updated_at`.
        """
        pid = _id("project_id", project_id)
        if not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, got {page_size!r}")
        seen, page = 0, 1
        while True:
            try:
                body = self.request("GET", "/api/tasks/", params={"project": pid, "fields": "all",
                                                                  "page": page, "page_size": page_size})
            except LabelStudioApiError as exc:
                if exc.status_code == 404 and page > 1:  # "Invalid page.": tasks were deleted meanwhile
                    return
                raise
            tasks = body.get("tasks", [])
            yield from tasks
            seen += len(tasks)
            if not tasks or seen >= body.get("total", 0):
                return
            page += 1

    def list_tasks(self, project_id: int, *, page_size: int = 100) -> list[JSON]:
        """All tasks of a project with their annotations (see `iter_tasks`)."""
        return list(self.iter_tasks(project_id, page_size=page_size))

    def get_task(self, task_id: int) -> JSON:
        """`GET /api/tasks/{id}/`: the task with all its `annotations` (skipped ones too) and `predictions`.

        Careful: here each annotation's `completed_by` is the user object (`{"id", "email", "first_name",
        ...}`), while `iter_tasks`, `task_annotations` and `get_annotation` give the user id (int)."""
        return self.request("GET", f"/api/tasks/{_id('task_id', task_id)}/")

    def task_annotations(self, task_id: int) -> list[JSON]:
        """`GET /api/tasks/{id}/annotations/`: the task's annotations in id order, **without skipped ones**
        (Label Studio filters `was_cancelled=False` here; `get_task` has all)."""
        return self.request("GET", f"/api/tasks/{_id('task_id', task_id)}/annotations/")

    def create_annotation(self, task_id: int, result: list[JSON], *, lead_time: float | None = None,
                          was_cancelled: bool = False, **fields: Any) -> JSON:
        """`POST /api/tasks/{id}/annotations/` as this client's user (`completed_by` is that user).

        result: Label Studio regions (`{"id", "from_name", "to_name", "type", "value", ...}`); Label
        Studio stores them unchecked. lead_time: seconds spent. was_cancelled=True records a skip.
        Not retried once sent (see the module docstring).
        """
        if not isinstance(result, list):
            raise ValueError("result must be a list of Label Studio result dicts")
        body = {"result": result, "was_cancelled": bool(was_cancelled), **_present(lead_time=lead_time), **fields}
        return self.request("POST", f"/api/tasks/{_id('task_id', task_id)}/annotations/", json_body=body)

    def create_prediction(self, task_id: int, result: list[JSON], *, model_version: str | None = None,
                          score: float | None = None) -> JSON:
        """`POST /api/predictions/`: a prediction (pre-filled regions a labeler starts from) for one task."""
        if not isinstance(result, list):
            raise ValueError("result must be a list of Label Studio result dicts")
        body = {"task": _id("task_id", task_id), "result": result,
                **_present(model_version=model_version, score=score)}
        return self.request("POST", "/api/predictions/", json_body=body)

    def update_annotation(self, annotation_id: int, **fields: Any) -> JSON:
        """`PATCH /api/annotations/{id}/` (e.g. `was_cancelled=True`: counted as a skip, so Label Studio
        recomputes the task's `is_labeled` and puts it back in the labeling queue)."""
        if not fields:
            raise ValueError("update_annotation needs at least one field")
        return self.request("PATCH", f"/api/annotations/{_id('annotation_id', annotation_id)}/", json_body=fields)

    def update_task(self, task_id: int, **fields: Any) -> JSON:
        """`PATCH /api/tasks/{id}/` (e.g. `data=`: the task's whole data, which Label Studio replaces)."""
        if not fields:
            raise ValueError("update_task needs at least one field")
        return self.request("PATCH", f"/api/tasks/{_id('task_id', task_id)}/", json_body=fields)

    def get_annotation(self, annotation_id: int) -> JSON:
        """`GET /api/annotations/{id}/`."""
        return self.request("GET", f"/api/annotations/{_id('annotation_id', annotation_id)}/")

    # -- storage ----------------------------------------------------------------------------------

    def create_s3_import_storage(self, project_id: int, *, bucket: str, s3_endpoint: str, access_key_id: str,
                                 secret_access_key: str, prefix: str = "", region_name: str = "us-east-1",
                                 presign: bool = False, title: str | None = None, **fields: Any) -> JSON:
        """`POST /api/storages/s3/`: an S3 import storage, so `s3://bucket/...` in task data is served
        by Label Studio at `/tasks/{id}/resolve/?fileuri=<base64url of the URI>` (presign=False:
        proxied behind Label Studio's login, with Range support; True: a redirect to a presigned URL).
        No sync is needed for that. Label Studio checks the bucket and credentials on create (400
        naming the problem). The keys are not returned.

        Quirk (notes): `POST /api/storages/s3/validate` with a saved storage's id resets presign to
        true, so this never calls it, and PATCHes presign back if the answer differs.
        """
        pid = _id("project_id", project_id)
        for name, value in (("bucket", bucket), ("s3_endpoint", s3_endpoint), ("access_key_id", access_key_id),
                            ("secret_access_key", secret_access_key)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        body = {"project": pid, "bucket": bucket, "prefix": prefix, "s3_endpoint": s3_endpoint,
                "aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key,
                "region_name": region_name, "presign": bool(presign), "title": title or f"s3://{bucket}/{prefix}",
                **fields}
        storage = self.request("POST", "/api/storages/s3/", json_body=body)
        if storage.get("presign") != bool(presign):
            storage = self.request("PATCH", f"/api/storages/s3/{storage['id']}", json_body={"presign": bool(presign)})
        return storage

    def list_s3_import_storages(self, project_id: int) -> list[JSON]:
        """`GET /api/storages/s3/?project={id}`."""
        return self.request("GET", "/api/storages/s3/", params={"project": _id("project_id", project_id)})

    # -- internals --------------------------------------------------------------------------------

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[JSON]:
        """DRF PageNumberPagination: `{count, next, previous, results}`."""
        page = 1
        while True:
            body = self.request("GET", path, params={**params, "page": page})
            yield from body.get("results", [])
            if not body.get("next"):
                return
            page += 1


class _ServerError(Exception):
    """A 5xx answer, raised inside the retry loop so tenacity can retry it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _present(**fields: Any) -> JSON:
    return {key: value for key, value in fields.items() if value is not None}


def _id(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value
