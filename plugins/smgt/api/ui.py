"""The "Labeling batches" page shown inside the Airflow UI (plugin external view -> /smgt/ui).

Rendered on the server from the same `smgt.batch_status` functions as batch/show, so a person
looking at the page and a client calling the API see the same thing. Plain HTML, no scripts: the
page is loaded in an iframe of the Airflow UI with the user's session cookie.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from smgt.api import aws
from smgt.api.auth import BATCH_DAG_ID
from smgt.settings import get_settings

PAGE_SIZE = 50
STATUSES = ("IN_PROGRESS", "WAIT_FOR_META_DATA_INPUT", "COMPLETE", "INTERNAL_ERROR", "VALIDATION_FAIL")
UI_ORDER = ("WAIT_FOR_META_DATA_INPUT", "INTERNAL_ERROR", "VALIDATION_FAIL", "IN_PROGRESS", "COMPLETE")
LEVELS = (("firstLevel", 1), ("secondLevel", 2), ("thirdLevel", 3))
_STATUS_COLOURS = {
    "COMPLETE": "#1b7f3b",
    "IN_PROGRESS": "#1f5fa8",
    "WAIT_FOR_META_DATA_INPUT": "#a86b00",
    "INTERNAL_ERROR": "#b00020",
    "VALIDATION_FAIL": "#b00020",
    "FAILED": "#b00020",
    "STOPPED": "#b00020",
    "WAIT_FOR_SMGT_RESPONSE": "#1f5fa8",
    "PENDING": "#777",
}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#222}
h1{font-size:1.3rem} table{border-collapse:collapse;width:100%;margin-bottom:1.2rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f4f4f4} .status{font-weight:600} .muted{color:#777} .err{color:#b00020}
nav a{margin-right:1rem}
.quality{border:1px solid #ddd;padding:.5rem .8rem;margin-bottom:1rem} .quality h3{font-size:1rem;margin:.2rem 0}
.thumbs{display:flex;flex-wrap:wrap;gap:.6rem} .thumbs figure{margin:0;width:320px;font-size:.8rem}
.thumbs img{width:320px;display:block;border:1px solid #ccc}
.qtable{display:table;border-collapse:collapse;margin:.4rem 0} .qrow{display:table-row}
.qrow>span{display:table-cell;border:1px solid #ddd;padding:.2rem .5rem;font-size:.85rem}
.qhead>span{background:#f4f4f4;font-weight:600}
"""


def _status(value: Any) -> str:
    text = escape(str(value))
    colour = _STATUS_COLOURS.get(str(value), "#444")
    return f'<span class="status" style="color:{colour}">{text}</span>'


def _link(url: Any, label: str) -> str:
    if not url:
        return '<span class="muted">-</span>'
    return f'<a href="{escape(str(url), quote=True)}" target="_blank" rel="noopener">{escape(label)}</a>'


# How the local Ground Truth's workforces read on the page; GT work teams show as their ARN path.
_WORKFORCES = {"labelstudio": "Label Studio (local)", "simulated": "simulated workers (local)"}


def _workforce(name: Any) -> str:
    if not name:
        return '<span class="muted">-</span>'
    return escape(_WORKFORCES.get(str(name), str(name)))


def _job_detail(job: dict[str, Any]) -> str:
    """Why a job failed (GT's words) or why it has no GT job yet, under its status; then its QA
    gate's re-work rounds."""
    out = ""
    if job.get("failureReason"):
        out = f'<br><span class="err">{escape(str(job["failureReason"]))}</span>'
    elif job.get("statusMessage"):
        out = f'<br><span class="muted">{escape(str(job["statusMessage"]))}</span>'
    return out + _rework(job.get("rework"), job.get("effectiveOutputS3Url"))


def _rework(rework: Any, effective_url: Any) -> str:
    """A QA gate's rounds: each re-work job, its status and why each data object went back."""
    if not isinstance(rework, dict):
        return ""
    items = []
    for entry in rework.get("rounds") or []:
        why = "".join(
            f"<li>{escape(str(s.get('sourceRef', '')).rsplit('/', 1)[-1])}: {s.get('framesSentBack')} of "
            f"{s.get('framesScored')} frames ({escape(', '.join(dict.fromkeys(r.split(':')[0] for f in s.get('frames') or [] for r in f.get('reasons') or [])))})</li>"
            for s in entry.get("sentBack") or [])
        items.append(f'<li class="rework">round {entry.get("round")}: {escape(str(entry.get("jobName")))} '
                     f'{_status(entry.get("status"))}, {entry.get("objectsSentBack")} sent back'
                     f'{" &middot; " + escape(str(entry["failureReason"])) if entry.get("failureReason") else ""}'
                     f"<ul>{why}</ul></li>")
    still = (rework.get("stillFlagged") or {}).get("objectsSentBack")
    if still:
        items.append(f"<li>{still} data object(s) still fail the gate after the last round</li>")
    if not items:
        items.append("<li>every data object passed</li>")
    link = f" &middot; {_link(effective_url, 'corrected output')}" if effective_url else ""
    return f'<br><span class="muted">QA gate{link}</span><ul class="rework-rounds">{"".join(items)}</ul>'


def _batch_rows(batch_id: str, detail: dict[str, Any], rate_task: tuple[str, int] | None = None) -> str:
    rows = []
    # Runs triggered from the UI form have a generated run id; the batch id is in their conf.
    run_id = str(detail.get("runId") or batch_id)
    run_url = f"/dags/{quote(str(detail.get('dagId', BATCH_DAG_ID)))}/runs/{quote(run_id)}"
    header = (
        f'<tr><th colspan="7" id="batch-{escape(batch_id, quote=True)}">'
        f'<a href="{escape(run_url, quote=True)}" target="_top">{escape(batch_id)}</a> '
        f"&middot; {_status(detail.get('status'))}"
    )
    if detail.get("message"):
        # Red only for failures; a waiting batch's message is an instruction, not an error.
        css = "err" if detail.get("status") in ("INTERNAL_ERROR", "VALIDATION_FAIL") else "muted"
        header += f' <span class="{css}">{escape(str(detail["message"]))}</span>'
    if rate_task is not None:
        # Airflow's own Required Actions form for the HITL task (HITLOperator.generate_link_to_ui).
        task_id, map_index = rate_task
        action = f"/dags/{quote(str(detail.get('dagId', BATCH_DAG_ID)))}/runs/{quote(run_id)}/tasks/" + (
            f"{quote(task_id)}/required_actions?map_index={map_index}"
        )
        header += f' <a href="{escape(action, quote=True)}" target="_top">give the down-sampling rate</a>'
    if detail.get("qualityReportS3Url"):
        header += " &middot; " + _link(detail["qualityReportS3Url"], "batch quality report")
    rows.append(header + "</th></tr>")
    for key, number in LEVELS:
        level = detail.get(key)
        if not level:
            continue
        done = f"{level.get('numChildBatchesComplete', 0)}/{level.get('numChildBatches', 0)}"
        for job in level.get("jobLevels", []):
            rows.append(
                "<tr>"
                f"<td>level {number} ({_status(level.get('status'))}, {escape(done)} done)</td>"
                f"<td>{escape(str(job.get('labelingJobName', '')))}</td>"
                f"<td>{_status(job.get('batchStatus', ''))}{_job_detail(job)}</td>"
                f"<td>{escape(str(job.get('labelAttributeName', '')))}</td>"
                f"<td>{_workforce(job.get('workforce'))}</td>"
                f"<td>{_link(job.get('jobInputS3Url'), 'input manifest')}</td>"
                f"<td>{_link(job.get('jobOutputS3Url'), 'output manifest')}</td>"
                "</tr>"
            )
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------------
# Quality reports (smgt.qa.report): below the table, one block per job that has one
# --------------------------------------------------------------------------------------------------

_LABEL_COLUMNS = (("objects", "objects"), ("tracks", "tracks"), ("findings", "findings"),
                  ("audited", "audited (next level)"), ("shareAdjusted", "share adjusted"),
                  ("auditFailRate", "audit Fail rate"))
_WORKER_COLUMNS = (("dataObjects", "data objects"), ("objectsLabeled", "objects labeled"), ("tasks", "tasks"),
                   ("meanTimePerTaskSeconds", "time per task (s)"), ("auditedObjects", "audited at next level"),
                   ("shareAdjustedAtNextLevel", "share adjusted at next level"))


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    return escape(str(value))


def _qtable(title: str, rows: dict[str, dict[str, Any]], columns: tuple[tuple[str, str], ...]) -> str:
    """A small table drawn with CSS (div/span, not <table>: the page's job table stays the only one)."""
    if not rows:
        return ""
    used = [(k, t) for k, t in columns if any(r.get(k) is not None for r in rows.values())]
    head = "".join(f"<span>{escape(t)}</span>" for t in [title, *(t for _, t in used)])
    body = "".join(
        f'<div class="qrow"><span>{escape(name)}</span>' + "".join(f"<span>{_cell(r.get(k))}</span>" for k, _ in used)
        + "</div>" for name, r in rows.items())
    return f'<div class="qtable"><div class="qrow qhead">{head}</div>{body}</div>'


def _next_level_workers(job_name: str, jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per level-1 worker of `job_name`: what the audits chained from it adjusted."""
    out: dict[str, dict[str, Any]] = {}
    for job in jobs:
        between = (job.get("qualityReport") or {}).get("betweenLevels") or {}
        if between.get("parentJobName") != job_name:
            continue
        for worker, numbers in (between.get("perWorker") or {}).items():
            out[worker] = {"auditedObjects": numbers.get("objects"),
                           "shareAdjustedAtNextLevel": numbers.get("shareAdjusted")}
    return out


def _residual(estimate: Any) -> str:
    if not isinstance(estimate, dict):
        return '<span class="muted">not estimated (no random or exploration frames audited)</span>'
    return (f"<b>{estimate['residualErrorRate']:.1%}</b> of the frames "
            f"(error rate {estimate['errorRateInPool']:.1%} &plusmn; {estimate['standardError']:.1%} on "
            f"{estimate['framesUsed']} audited frames of the {escape(str(estimate['estimator']))}, applied to the "
            f"{estimate['unauditedPoolFrames']} unaudited of {estimate['framesIn']})")


def _job_quality(job: dict[str, Any], jobs: list[dict[str, Any]]) -> str:
    name = str(job.get("labelingJobName", ""))
    anchor = escape(f"quality-{name}", quote=True)
    if job.get("qualityReportError"):
        return (f'<div class="quality" id="{anchor}"><h3>{escape(name)}</h3>'
                f'<span class="err">No quality report: {escape(str(job["qualityReportError"]))}</span></div>')
    report = job.get("qualityReport") or {}
    risk = report.get("risk") or {}
    histogram = " &middot; ".join(f"{escape(str(k))}: {v}" for k, v in (risk.get("riskHistogram") or {}).items())
    signals = ", ".join(f"{escape(str(k))} {v}" for k, v in (risk.get("signals") or {}).items()) or "none"
    parts = [f'<div class="quality" id="{anchor}"><h3>{escape(name)} &middot; '
             f'{_link(job.get("qualityReportS3Url"), "report JSON")}</h3>',
             f"<p>{risk.get('framesFlagged', 0)} of {risk.get('framesScored', 0)} frames flagged. "
             f"Risk distribution (frames): {histogram}. Signals: {signals}.</p>"]
    if "betweenLevels" in report:
        between = report["betweenLevels"] or {}
        share = between.get("shareAdjusted")
        parts.append(f"<p>Audit of {escape(str(between.get('parentJobName')))}: {between.get('adjusted')} of "
                     f"{between.get('objects')} objects adjusted"
                     f"{f' ({share:.1%})' if isinstance(share, int | float) else ''}. "
                     f"Estimated residual error rate: {_residual(report.get('residualErrorRate'))}</p>")
    frames = report.get("flaggedFrames") or []
    if frames:
        figures = []
        for frame in frames:
            caption = (f"line {frame.get('line')} frame {escape(str(frame.get('frame') or 'image'))} "
                       f"&middot; risk {frame.get('risk')}<br>"
                       + "<br>".join(escape(str(r)) for r in (frame.get("reasons") or [])[:3]))
            src = frame.get("thumbnailS3Url")
            image = (f'<img src="{escape(str(src), quote=True)}" alt="flagged frame {escape(str(frame.get("frame")))}" '
                     f'class="thumb" loading="eager">' if src else
                     f'<span class="muted">{escape(str(frame.get("thumbnailError") or "no thumbnail link"))}</span>')
            figures.append(f"<figure>{image}<figcaption>{caption}</figcaption></figure>")
        parts.append(f'<div class="thumbs">{"".join(figures)}</div>')
    parts.append(_qtable("label", report.get("perLabel") or {}, _LABEL_COLUMNS))
    workers = {w: dict(v) for w, v in (report.get("perWorker") or {}).items()}
    for worker, numbers in _next_level_workers(name, jobs).items():
        workers.setdefault(worker, {}).update(numbers)
    parts.append(_qtable("worker", workers, _WORKER_COLUMNS))
    return "".join(parts) + "</div>"


def _quality_section(batch_id: str, detail: dict[str, Any]) -> str:
    jobs = [job for key, _ in LEVELS for job in (detail.get(key) or {}).get("jobLevels", [])]
    blocks = [_job_quality(j, jobs) for j in jobs if j.get("qualityReport") or j.get("qualityReportError")]
    if not blocks:
        return ""
    return (f'<section id="quality-batch-{escape(batch_id, quote=True)}"><h2>Quality of {escape(batch_id)}</h2>'
            + "".join(blocks) + "</section>")


def _window(session: Any, batch_status: Any, page: int) -> tuple[dict[str, Any], bool, bool]:
    """The listing of page `page` counted from the newest batches, and whether newer/older exist.

    list_batches pages oldest first; people want the latest batches on the first page.
    """
    total = batch_status.list_batches(session, limit=1, offset=0).get("total")
    if not isinstance(total, int):  # a listing without a total: plain oldest-first pages
        listing = batch_status.list_batches(session, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
        count = sum(len(listing.get(st, [])) for st in STATUSES)
        return listing, page > 0, count >= PAGE_SIZE
    end = total - page * PAGE_SIZE
    if end <= 0:
        return {st: [] for st in STATUSES}, page > 0, False
    start = max(0, end - PAGE_SIZE)
    return batch_status.list_batches(session, limit=end - start, offset=start), page > 0, start > 0


def batches_page(session: Any, batch_status: Any, *, page: int = 0) -> str:
    """The batches of one page, newest first, grouped by status, with levels, jobs and links."""
    listing, has_newer, has_older = _window(session, batch_status, page)
    # Batches that need someone first; inside a status the newest first.
    ids = [(bid, st) for st in UI_ORDER for bid in reversed(listing.get(st, []))]
    try:
        presign = aws.presigner(get_settings())
        presign_note = ""
    except aws.AwsUnavailableError as exc:
        presign, presign_note = None, f'<p class="err">No output links: {escape(str(exc))}</p>'
    sections, quality = [], []
    for batch_id, listed_status in ids:
        snapshot = batch_status.load_batch(session, batch_id)
        if snapshot is None:  # finished deleting between the two reads
            continue
        try:
            detail = batch_status.describe_batch(snapshot, presign)
        except Exception as exc:  # one broken batch must not hide the others
            detail = {"status": listed_status, "message": f"cannot describe: {exc}"}
        detail.setdefault("dagId", getattr(snapshot, "dag_id", BATCH_DAG_ID))
        sections.append(_batch_rows(batch_id, detail, batch_status.waiting_rate_task(snapshot)))
        quality.append(_quality_section(batch_id, detail))
    counts = " ".join(f"{escape(st)}: {len(listing.get(st, []))}" for st in UI_ORDER)
    if isinstance(listing.get("total"), int):
        counts += f" (this page: {len(ids)} of {listing['total']} batches)"
    nav = []
    if has_newer:
        nav.append(f'<a href="?page={page - 1}">&larr; newer</a>')
    if has_older:
        nav.append(f'<a href="?page={page + 1}">older &rarr;</a>')
    table = (
        "<table><tr><th>Level</th><th>Labeling job</th><th>Job status</th><th>Label attribute</th>"
        "<th>Labeled by</th><th>Input</th><th>Output</th></tr>" + "\n".join(sections) + "</table>"
        if sections
        else '<p class="muted">No batches yet. Create one with POST /smgt/batch/create or by '
        f"triggering the {BATCH_DAG_ID} DAG.</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Labeling batches</title>"
        f"<style>{_STYLE}</style></head><body><h1>Labeling batches</h1>"
        f'<p class="muted">{counts}</p>{presign_note}{table}<nav>{"".join(nav)}</nav>{"".join(quality)}</body></html>'
    )


def forbidden_page(user_name: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Forbidden</title></head><body>"
        f"<h1>Forbidden</h1><p>{escape(user_name)} may not read runs of the {BATCH_DAG_ID} DAG.</p>"
        "</body></html>"
    )
