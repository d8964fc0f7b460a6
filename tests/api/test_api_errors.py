"""Every endpoint's auth and error paths against a real api-server (401/403/400/404/409)."""

from __future__ import annotations

import pytest
from api_helpers import new_batch_id, notebook_batch, show, wait_for

pytestmark = pytest.mark.integration

ENDPOINTS = [
    ("POST", "batch/create"),
    ("GET", "batch/show"),
    ("GET", "batch/show?batchId=whatever"),
    ("POST", "batch-metadata/post"),
    ("GET", "workforce/show"),
]
STATUSES = {"IN_PROGRESS", "WAIT_FOR_META_DATA_INPUT", "COMPLETE", "INTERNAL_ERROR", "VALIDATION_FAIL"}


def level_one_batch(batch_id: str) -> dict:
    """The notebook's vehicle job alone: it passes the pre-flight and never waits for a rate."""
    body = notebook_batch(batch_id)
    body["labelingJobs"] = body["labelingJobs"][:1]
    return body


def test_openapi_documents_the_spec_paths(stack):
    spec = stack.session(None).get(stack.api("openapi.json"), timeout=30).json()
    assert {"/batch/create", "/batch/show", "/batch-metadata/post", "/workforce/show"} <= set(spec["paths"])
    body_schema = spec["paths"]["/batch/create"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert "labelingJobs" in body_schema["properties"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_anonymous_calls_get_401(stack, method, path):
    resp = stack.session(None).request(method, stack.api(path), json={"batchId": "x"}, timeout=30)
    assert resp.status_code == 401, resp.text
    assert resp.json()["message"] == "Not authenticated"


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_forged_token_is_refused(stack, method, path):
    http = stack.session(None)
    http.headers["Authorization"] = "Bearer not.a.jwt"
    resp = http.request(method, stack.api(path), json={}, timeout=30)
    assert resp.status_code == 403, resp.text
    assert resp.json()["message"] == "Invalid JWT token"


def test_a_token_signed_with_any_secret_but_this_deployments_is_refused(stack):
    """The api-server's signing secret is its own (smgt.embedded.new_signing_secrets): a token with the
    same claims, signed with the secret every deployment used to share or with any other, is refused."""
    import jwt

    token = stack.token("admin")
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})

    def show_with(secret: str) -> int:
        http = stack.session(None)
        http.headers["Authorization"] = "Bearer " + jwt.encode(claims, secret, algorithm=header["alg"], headers=header)
        return http.get(stack.api("batch/show"), timeout=30).status_code

    assert show_with(stack.signing_secrets["jwt_secret"]) == 200  # the re-signing itself is sound
    assert show_with("smgt-embedded-jwt-secret-0123456789abcdef") == 403
    assert show_with(stack.signing_secrets["jwt_secret"] + "x") == 403


def test_viewer_may_read_but_not_create_or_post_metadata(stack):
    viewer = stack.session("viewer")
    assert viewer.get(stack.api("batch/show"), timeout=30).status_code == 200
    assert viewer.get(stack.api("workforce/show"), timeout=60).status_code == 200

    batch_id = new_batch_id("viewer")
    resp = viewer.post(stack.api("batch/create"), json=notebook_batch(batch_id), timeout=30)
    assert resp.status_code == 403, resp.text
    assert resp.json()["message"] == "Forbidden"
    assert not stack.run_exists(batch_id)

    resp = viewer.post(
        stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": 50}, timeout=30
    )
    assert resp.status_code == 403, resp.text


def test_cookie_session_of_the_ui_authenticates_too(stack):
    http = stack.session(None)
    http.cookies.set("_token", stack.token("viewer"))
    resp = http.get(stack.api("batch/show"), timeout=30)
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) >= STATUSES


def test_invalid_config_is_400_with_every_problem_and_creates_nothing(stack):
    batch_id = new_batch_id("bad")
    body = notebook_batch(batch_id)
    body["labelingJobs"][0]["jobName"] = "has_underscore"
    body["labelingJobs"][1]["jobType"] = "STREAMING"
    body["labelingJobs"][3]["inputConfig"]["downSamplingRate"] = 0
    body["labelingJobs"][2]["labelAttributeName"] = "vehicle-audit"
    body["colour"] = "blue"

    before = len(stack.dag_runs())
    resp = stack.session("admin").post(stack.api("batch/create"), json=body, timeout=60)
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    assert answer["message"].startswith("invalid batch config")
    errors = "\n".join(answer["errors"])
    assert "'colour': unknown field" in errors
    assert "labelingJobs[0] 'has_underscore': jobName:" in errors and "underscores" in errors
    assert "labelingJobs[1]" in errors and "jobType" in errors and "'STREAMING'" in errors
    assert "labelingJobs[3]" in errors and "downSamplingRate" in errors
    assert "labelingJobs[2]" in errors and "must end with '-ref'" in errors
    assert len(answer["errors"]) >= 5

    assert not stack.run_exists(batch_id)
    assert len(stack.dag_runs()) == before
    resp = stack.session("admin").get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=30)
    assert resp.status_code == 404


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "request body must be a JSON object"),
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "batch config must be a JSON object"),
        (b'{"batchId": NaN}', "request body is not valid JSON"),
    ],
)
def test_create_with_a_body_that_is_not_a_config_object_is_400(stack, raw, message):
    resp = stack.session("admin").post(
        stack.api("batch/create"), data=raw, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert resp.status_code == 400, resp.text
    answer = resp.json()
    assert message in answer["message"] or any(message in e for e in answer.get("errors", []))


def test_create_then_duplicate_is_409_and_creates_one_run(stack):
    batch_id = new_batch_id("dup")
    body = level_one_batch(batch_id)
    # The `user` role may trigger DAG runs, so it may create batches.
    resp = stack.session("user").post(stack.api("batch/create"), json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["batchId"] == batch_id

    run = (
        stack.session("admin")
        .get(f"{stack.url}/api/v2/dags/smgt_batch/dagRuns/{batch_id}", timeout=30)
        .json()
    )
    assert run["dag_run_id"] == batch_id
    assert run["conf"]["batchId"] == batch_id
    # The stored conf is the normalized config: defaults filled in.
    assert run["conf"]["labelingJobs"][0]["maxConcurrentTaskCount"] == 100

    again = stack.session("admin").post(stack.api("batch/create"), json=body, timeout=60)
    assert again.status_code == 409, again.text
    assert again.json()["message"] == f"batch {batch_id!r} already exists"
    assert [r["dag_run_id"] for r in stack.dag_runs()].count(batch_id) == 1
    # Who created it is in Airflow's audit log, like any trigger through the REST API.
    logs = stack.session("admin").get(
        f"{stack.url}/api/v2/eventLogs", params={"event": "smgt_batch_create", "run_id": batch_id}, timeout=30
    )
    assert [(e["owner"], e["dag_id"]) for e in logs.json()["event_logs"]] == [("user", "smgt_batch")]

    # Not waiting for metadata (it has no level 2): 409, nothing answered.
    resp = stack.session("admin").post(
        stack.api("batch-metadata/post"), json={"batchId": batch_id, "downSamplingRate": 50}, timeout=30
    )
    assert resp.status_code == 409, resp.text
    assert resp.json()["message"] in [  # done already, if its one job was quick
        f"batch {batch_id!r} is not waiting for batch metadata (status {reason})"
        for reason in ("IN_PROGRESS; it needs no rate: every chained job has its own, or there is none", "COMPLETE")]


def test_a_rejected_run_leaves_its_batch_id_free_and_steps_aside_once_it_is_used(stack):
    """A run triggered through Airflow's REST API (or CLI) with a run id of its own that is neither
    the batchId nor generated: resolve_batch rejects it, creating nothing. It is found under the
    batchId of its conf, which batch/create can still use; from then on that id is the new batch's
    alone, and the rejected run is listed under its run id."""
    admin = stack.session("admin")
    batch_id, run_id = new_batch_id("kept-free"), new_batch_id("other-name")
    resp = admin.post(f"{stack.url}/api/v2/dags/smgt_batch/dagRuns",
                      json={"dag_run_id": run_id, "logical_date": None, "conf": level_one_batch(batch_id)}, timeout=30)
    assert resp.status_code == 200, resp.text
    shown = wait_for(stack, batch_id, lambda d: d.get("status") == "VALIDATION_FAIL", 180, "the run to be rejected")
    assert "differs from the run id" in shown["message"], shown

    resp = admin.post(stack.api("batch/create"), json=level_one_batch(batch_id), timeout=60)
    assert resp.status_code == 200, resp.text
    assert show(stack, batch_id)["status"] != "VALIDATION_FAIL"
    assert show(stack, run_id)["status"] == "VALIDATION_FAIL"
    listed = admin.get(stack.api("batch/show"), params={"limit": 1000}, timeout=30).json()
    assert [key for key in STATUSES for i in listed[key] if i == batch_id] != ["VALIDATION_FAIL"]
    assert sum(listed[key].count(batch_id) for key in STATUSES) == 1, listed
    assert run_id in listed["VALIDATION_FAIL"]


def test_show_unknown_batch_is_404_with_a_message(stack):
    resp = stack.session("viewer").get(
        stack.api("batch/show"), params={"batchId": "no-such-batch"}, timeout=30
    )
    assert resp.status_code == 404, resp.text
    assert resp.json()["message"] == "batch 'no-such-batch' not found"


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 100000}, {"limit": "ten"}, {"offset": -1}, {"nextToken": "garbage!"}],
)
def test_show_with_bad_paging_is_400(stack, params):
    resp = stack.session("viewer").get(stack.api("batch/show"), params=params, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"]


@pytest.mark.parametrize("batch_id", ["", " "])
def test_show_with_an_empty_batch_id_is_400_not_an_unknown_batch(stack, batch_id):
    resp = stack.session("viewer").get(stack.api("batch/show"), params={"batchId": batch_id}, timeout=30)
    assert resp.status_code == 400, resp.text
    assert resp.json()["message"] == "batchId: empty; leave it out to list every batch"


def test_show_list_pages_with_next_token(stack):
    admin = stack.session("admin")
    for _ in range(2):
        body = level_one_batch(new_batch_id("page"))
        assert admin.post(stack.api("batch/create"), json=body, timeout=60).status_code == 200
    everything = admin.get(stack.api("batch/show"), timeout=30).json()
    assert set(everything) >= STATUSES and "nextToken" not in everything
    all_ids = sorted(i for key in STATUSES for i in everything[key])
    assert len(all_ids) >= 2

    seen: list[str] = []
    params: dict[str, object] = {"limit": 1}
    for _ in range(len(all_ids) + 2):
        page = admin.get(stack.api("batch/show"), params=params, timeout=30).json()
        ids = [i for key in STATUSES for i in page[key]]
        assert len(ids) <= 1
        seen.extend(ids)
        if "nextToken" not in page:
            break
        params = {"limit": 1, "nextToken": page["nextToken"]}
    assert sorted(seen) == all_ids


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"batchId": "b-1", "downSamplingRate": 0},
            "downSamplingRate: must be a number with 0 < rate <= 100",
        ),
        ({"batchId": "b-1", "downSamplingRate": 100.5}, "0 < rate <= 100, got 100.5"),
        ({"batchId": "b-1", "downSamplingRate": -3}, "0 < rate <= 100"),
        ({"batchId": "b-1", "downSamplingRate": "50"}, 'got "50"'),
        ({"batchId": "b-1", "downSamplingRate": True}, "got true"),
        ({"batchId": "b-1", "downSamplingRate": None}, "got null"),
        ({"batchId": "b-1"}, "downSamplingRate: required"),
        ({"downSamplingRate": 50}, "batchId: required"),
        ({"batchId": "b_1", "downSamplingRate": 50}, "batchId: required, must match"),
        ({"batchId": "b-1", "downSamplingRate": 50, "rate": 50}, "'rate': unknown field"),
        ([50], "request body must be a JSON object"),
    ],
)
def test_metadata_post_bad_body_is_400(stack, body, fragment):
    resp = stack.session("admin").post(stack.api("batch-metadata/post"), json=body, timeout=30)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json()["message"]


def test_metadata_post_unknown_batch_is_404(stack):
    resp = stack.session("admin").post(
        stack.api("batch-metadata/post"),
        json={"batchId": "no-such-batch", "downSamplingRate": 50},
        timeout=30,
    )
    assert resp.status_code == 404, resp.text
    assert resp.json()["message"] == "batch 'no-such-batch' not found"


def test_workforce_show_lists_both_teams_with_members(stack):
    teams = stack.session("viewer").get(stack.api("workforce/show"), timeout=60).json()
    assert [t["category"] for t in teams] == ["PRIMARY", "SECONDARY"]
    assert [t["workteamName"] for t in teams] == ["smgt-workflows-first-level", "smgt-workflows-second-level"]
    for team in teams:
        assert team["memberDefinitions"], team
        for definition in team["memberDefinitions"]:
            assert {"userPool", "userGroup", "clientId", "members"} <= set(definition)
            for member in definition["members"]:
                assert isinstance(member["username"], str)
                assert isinstance(member["enabled"], bool)
                assert isinstance(member["userStatus"], str)
    assert any(d["members"] for t in teams for d in t["memberDefinitions"])


def test_ui_page_redirects_anonymous_to_login_and_renders_for_users(stack):
    anonymous = stack.session(None).get(stack.api("ui"), allow_redirects=False, timeout=30)
    assert anonymous.status_code == 303
    assert "/auth/login" in anonymous.headers["location"]

    http = stack.session(None)
    http.cookies.set("_token", stack.token("viewer"))
    page = http.get(stack.api("ui"), timeout=60)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Labeling batches</h1>" in page.text
    beyond = http.get(stack.api("ui"), params={"page": 10_000}, timeout=60)
    assert beyond.status_code == 200 and "No batches" in beyond.text
    assert http.get(stack.api("ui"), params={"page": -1}, timeout=30).status_code == 400

    plugins = stack.session("admin").get(f"{stack.url}/api/v2/plugins", timeout=30).json()["plugins"]
    smgt = next(p for p in plugins if p["name"] == "smgt")
    assert smgt["fastapi_apps"][0]["url_prefix"] == "/smgt"
    assert smgt["external_views"][0]["href"] == "/smgt/ui"
