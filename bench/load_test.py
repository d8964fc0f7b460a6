"""Load test on the native production stack: N batches of 4 jobs in flight at once.

    .venv/bin/python bench/load_test.py                  # starts its own stack, 50 batches, then down
    .venv/bin/python bench/load_test.py --batches 10 --job-seconds 60
    .venv/bin/python bench/load_test.py --stack-dir .smgt/stack --keep   # reuse a stack already up
    .venv/bin/python bench/load_test.py --batches 20 --before 99c09ae   # that commit first, same load

`--before REV` first runs the load test of commit REV (a temporary git worktree using this venv, its
own stack started and stopped), then this one, and prints both drains side by side.

Every batch is the notebook's (2 level-1 jobs, 2 audit jobs, rates given), created through the
plugin API. The emulator holds every job InProgress for --job-seconds (fault `delay_jobs`; default
0, instant workers: the drain then measures orchestration alone), so with e.g. 90 all batches sit
waiting on GT together. While they drain it samples, every --sample seconds:

- worker slots in use: Celery `inspect active` on the stack's worker, and running task instances
  (what holds a slot); deferred sensors should hold none;
- triggerer load: deferred task instances, rows in `trigger`, triggerer CPU and RSS;
- DescribeLabelingJob calls in the last minute (emulator `GET /_smgt/stats`);
and reports time to drain (first create to last batch COMPLETE) and where the drain's CPU went: each
component's CPU seconds (its process group, reaped children included; PostgreSQL and Redis by
process name), whose sum is at most cores x drain. Results go to
bench/out/load_<utc>.json (summary + samples). Stops by itself: --timeout bounds the whole run.

Measured 2026-11-24 (2 cores, 24 GiB; 50 batches, --job-seconds 300, poke 30 s, 8 worker slots):
all 50 COMPLETE, 200 CreateLabelingJob calls for 200 distinct GT jobs; up to 100 sensors deferred
at once (100 triggers) while worker slots in use were 0 at that sample; triggerer 4-13 % CPU,
~690 MB RSS (with its serve-logs child); DescribeLabelingJob ~2.5/min per deferred sensor (the 30 s
poll plus first poke and completion), peak 280/min incl. 200 name checks at create time; drain
1735 s, bound by the 8 Celery slots running ~1,400 short tasks (each task process parses the DAG
file, 1.5 s idle / ~4 s under load).
Measured 2026-11-30 (same machine, 50 batches, --job-seconds 90, --before 99c09ae): drain 1214.9 s
with four tasks per job, 740.0 s with two (create_job, wait_for_job) and the unused prompt and level
tasks skipped; 200 distinct GT jobs both times. The quality report inside each wait_for_job is now
the largest per-job cost.
Measured 2026-11-30 later, idle machine (--before e172f44): drain 556.6 s -> 473.9 s with the report's
scipy import gone and the job described once at completion (DescribeLabelingJob 7.0 -> 6.0 per job).
The 800 Celery workloads (resolve, 2 plans, 2 per job plus a resume, finalize per batch) took 3,717 s
of slot time: ~4.2 s each at 8 slots on 2 cores. Preloading the tasks' third-party imports in the
pool processes saved 0.24 s of CPU per fork in isolation but nothing here (480 s); not kept.
Measured 2026-11-30, stop 20 (instant workers, the new default; --before 6ae8f80): drain 729.9 s ->
371.7 s (0.51x), 50 COMPLETE, 200 distinct GT jobs. One task per labeling job (600 Celery workloads,
were 800), AWS clients on one botocore loader per process, no inspect.stack per client, and the
worker's main process loading the tasks' modules before it forks. CPU over the drain: worker 283 s,
scheduler 146 s, api-server 99 s, postgres 69 s, triggerer 58 s (693 s in all on 2 cores: still
CPU-bound; the scheduler, api-server and database are Airflow's own per-task cost).
Measured 2026-11-30, stop 21 (--before 7aa8407, the end of stop 20; this machine ran that code 25 %
slower than the day before): drain 464.1 s -> 425.5 s, and 461.4 s -> 433.6 s in a second run.
Hooks with one connection share a boto3 session per thread, and the warm-up also loads trackeval,
Pillow's formats and Airflow's listener plugins. Worker CPU 327 s -> 284-285 s, in all 849-857 s ->
779-797 s.
Measured 2026-11-30, stop 22 (--before 1846f48; a faster machine: the same code used 350 CPU s where
the day before it used 797): drain 221.5 s -> 215.3 s, 50 COMPLETE, 200 distinct GT jobs. Nothing
this stop changed the drain's path (its batches carry their rates); CPU worker 137 s, scheduler
63-69 s, api-server 55-57 s, postgres 38-40 s, triggerer 27-28 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "stack"), str(ROOT / "tests"), str(ROOT / "plugins")]

import psutil  # noqa: E402
from sample_batches import notebook_batch  # noqa: E402
from stackctl import SCRIPT, Stack  # noqa: E402

TERMINAL_RUN_STATES = ("success", "failed")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=50)
    p.add_argument("--job-seconds", type=float, default=0.0,
                   help="extra time every GT job stays InProgress (default 0: instant workers, issue 13's drain "
                        "target; 90 puts every batch's sensors in the triggerer at once)")
    p.add_argument("--poke-interval", type=int, default=30, help="SMGT_POKE_INTERVAL for a stack started here")
    p.add_argument("--worker-concurrency", type=int, default=8, help="Celery slots for a stack started here")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    p.add_argument("--stack-dir", help="use the stack already up in this state dir (else start one)")
    p.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    p.add_argument("--prefix", default="lt")
    p.add_argument("--out", default=str(ROOT / "bench" / "out"))
    p.add_argument("--before", help="first run the same load test at this git revision (own stack)")
    return p.parse_args()


def run_before(rev: str, args: argparse.Namespace) -> dict[str, Any]:
    """The summary of bench/load_test.py at `rev`, run in a temporary worktree with this venv."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="load-before-"))
    tree = tmp / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True, capture_output=True)
    try:
        (tree / ".venv").symlink_to(ROOT / ".venv")
        argv = [sys.executable, str(tree / "bench" / "load_test.py"), "--batches", str(args.batches),
                "--job-seconds", str(args.job_seconds), "--poke-interval", str(args.poke_interval),
                "--worker-concurrency", str(args.worker_concurrency), "--sample", str(args.sample),
                "--timeout", str(args.timeout), "--prefix", "ltb", "--out", str(tmp / "out")]
        print(f"=== before: bench/load_test.py at {rev} ===", flush=True)
        subprocess.run(argv, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree / "plugins")}, check=False)
        outputs = sorted((tmp / "out").glob("load_*.json"))
        return json.loads(outputs[-1].read_text())["summary"] if outputs else {}
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False, capture_output=True)


def stack_env(state: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.startswith("SMGT_STACK_") or not k.startswith(("AIRFLOW", "AWS_", "SMGT_", "_AIRFLOW"))}
    env.update({"SMGT_STACK_DIR": str(state), "SMGT_POKE_INTERVAL": str(args.poke_interval),
                "SMGT_STACK_WORKER_CONCURRENCY": str(args.worker_concurrency)})
    return env


def celery_active(stack: Stack) -> int | None:
    """Tasks the stack's Celery worker is executing now (None if it did not answer)."""
    from celery import Celery

    app = Celery(broker=stack.env["AIRFLOW__CELERY__BROKER_URL"])
    try:
        replies = app.control.inspect(destination=[stack.env["SMGT_STACK_WORKER_NAME"]], timeout=2.0).active()
    except Exception:
        return None
    finally:
        app.close()
    if not replies:
        return None
    return sum(len(tasks) for tasks in replies.values())


def proc_usage(stack: Stack, component: str) -> dict[str, float]:
    """CPU % (since the last call) and RSS MB of a component's whole process group."""
    pgid = stack.pid(component)
    cpu = rss = 0.0
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) != pgid:
                continue
            key = (component, proc.pid)
            cached = _PROCS.setdefault(key, proc)
            cpu += cached.cpu_percent(None)
            rss += cached.memory_info().rss
        except (psutil.Error, ProcessLookupError):
            continue
    return {"cpu_pct": round(cpu, 1), "rss_mb": round(rss / 2**20, 1)}


_PROCS: dict[tuple[str, int], psutil.Process] = {}

CPU_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker", "emulator", "seaweedfs")


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system, with reaped children's) used so far by each component's process
    group, and by PostgreSQL and Redis (the machine's services, by process name). A difference of
    two calls says where a stretch of time went: a task's processes are reaped by the worker's pool
    processes, so their CPU stays in the count."""
    groups: dict[int, str] = {}
    for component in CPU_COMPONENTS:
        with contextlib.suppress(OSError, ValueError):
            groups[stack.pid(component)] = component
    totals = dict.fromkeys((*CPU_COMPONENTS, "postgres", "redis"), 0.0)
    for proc in psutil.process_iter(["name"]):
        try:
            name = proc.info["name"] or ""
            component = groups.get(os.getpgid(proc.pid))
            if component is None and name.startswith(("postgres", "redis")):
                component = "postgres" if name.startswith("postgres") else "redis"
            if component is None:
                continue
            t = proc.cpu_times()
            totals[component] += t.user + t.system + t.children_user + t.children_system
        except (psutil.Error, ProcessLookupError):
            continue
    return {k: round(v, 1) for k, v in totals.items()}


def sample(stack: Stack, prefix: str, t0: float) -> dict[str, Any]:
    like = f"{prefix}-%"
    ti = dict(stack.sql("select coalesce(state, 'none'), count(*) from task_instance where run_id like %s"
                        " group by 1", like))
    ti_all = dict(stack.sql("select state, count(*) from task_instance where run_id like %s"
                            " and state in ('success', 'failed') group by 1", like))
    running_by_task = dict(stack.sql(
        "select regexp_replace(task_id, '^.*\\.', ''), count(*) from task_instance where run_id like %s"
        " and state = 'running' group by 1", like))
    runs = dict(stack.sql("select state, count(*) from dag_run where run_id like %s group by 1", like))
    triggers = stack.sql("select count(*) from trigger")[0][0]
    stats = stack.emulator_stats()
    return {
        "t": round(time.monotonic() - t0, 1),
        "celery_active": celery_active(stack),
        "ti_running": ti.get("running", 0),
        "ti_all": ti_all,
        "ti_queued": ti.get("queued", 0),
        "ti_deferred": ti.get("deferred", 0),
        "ti_scheduled": ti.get("scheduled", 0),
        "job_tasks_running_in_worker": running_by_task.get("labeling_job", 0),
        "running_by_task": running_by_task,
        "triggers": triggers,
        "runs": runs,
        "describe_last_minute": stats.get("last_minute", {}).get("DescribeLabelingJob", 0),
        "describe_total": stats.get("calls", {}).get("DescribeLabelingJob", 0),
        "create_total": stats.get("calls", {}).get("CreateLabelingJob", 0),
        "throttled": sum(stats.get("throttled", {}).values()),
        "triggerer": proc_usage(stack, "triggerer"),
        "worker": proc_usage(stack, "worker"),
        "scheduler": proc_usage(stack, "scheduler"),
    }


def main() -> int:
    args = parse_args()
    before = run_before(args.before, args) if args.before else None
    if before is not None:
        print("=== after: the working tree ===", flush=True)
    own = args.stack_dir is None
    state = Path(args.stack_dir) if args.stack_dir else ROOT / ".smgt" / "stack-bench"
    env = stack_env(state, args)
    started = time.monotonic()
    if own:
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True)
        print(f"starting the stack in {state} ...", flush=True)
        subprocess.run([str(SCRIPT), "up"], env=env, check=True)
    stack = Stack(state, env)
    stack_up_s = round(time.monotonic() - started, 1)
    run_tag = datetime.now(UTC).strftime("%H%M%S")
    prefix = f"{args.prefix}{run_tag}"
    samples: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    try:
        stack.set_faults({"delay_jobs": [{"pattern": f"{prefix}-*", "seconds": args.job_seconds}]})
        stack.http.post(f"{stack.emulator_url}/_smgt/stats/reset", timeout=10)
        configs = []
        for i in range(args.batches):
            config = notebook_batch(f"{prefix}-{i:03d}")
            for job in config["labelingJobs"]:
                if job["jobLevel"] > 1:
                    job["inputConfig"]["downSamplingRate"] = 50
            configs.append(config)

        cpu_before = cpu_seconds(stack)
        t0 = time.monotonic()
        for config in configs:
            stack.create_batch(config)
        created_s = round(time.monotonic() - t0, 1)
        print(f"created {args.batches} batches through the API in {created_s}s", flush=True)

        deadline = t0 + args.timeout
        done = 0
        while time.monotonic() < deadline:
            s = sample(stack, prefix, t0)
            samples.append(s)
            done = sum(n for state_, n in s["runs"].items() if state_ in TERMINAL_RUN_STATES)
            print(f"t={s['t']:7.1f}s runs done {done:3d}/{args.batches}  celery active {s['celery_active']}"
                  f"  TI running {s['ti_running']:3d} (job tasks {s['job_tasks_running_in_worker']})"
                  f" queued {s['ti_queued']:3d} deferred {s['ti_deferred']:3d}  triggers {s['triggers']:3d}"
                  f"  Describe/min {s['describe_last_minute']:4d}"
                  f"  triggerer cpu {s['triggerer']['cpu_pct']}% rss {s['triggerer']['rss_mb']}MB", flush=True)
            if done >= args.batches:
                break
            time.sleep(args.sample)
        drain_s = round(time.monotonic() - t0, 1)
        cpu_after = cpu_seconds(stack)
        cpu_used = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after}

        statuses: dict[str, int] = {}
        for config in configs:
            status = stack.show(config["batchId"]).get("status", "?")
            statuses[status] = statuses.get(status, 0) + 1
        gt_jobs = stack.labeling_jobs(prefix)
        waiting = [s for s in samples if s["ti_deferred"] > 0]
        result = {
            "batches": args.batches,
            "jobs": 4 * args.batches,
            "job_seconds": args.job_seconds,
            "poke_interval": int(stack.env.get("SMGT_POKE_INTERVAL", "30")),
            "worker_concurrency": int(stack.env.get("SMGT_STACK_WORKER_CONCURRENCY", "0")),
            "stack_up_s": stack_up_s,
            "create_all_s": created_s,
            "drain_s": drain_s,
            "drained": done >= args.batches,
            "batch_statuses": statuses,
            "gt_jobs_created": len(gt_jobs),
            "gt_job_names_unique": len({j["LabelingJobName"].lower() for j in gt_jobs}) == len(gt_jobs),
            "max_deferred": max((s["ti_deferred"] for s in samples), default=0),
            "max_triggers": max((s["triggers"] for s in samples), default=0),
            "max_ti_running": max((s["ti_running"] for s in samples), default=0),
            "max_celery_active": max((s["celery_active"] or 0 for s in samples), default=0),
            "max_job_tasks_running_in_worker": max((s["job_tasks_running_in_worker"] for s in samples), default=0),
            # While sensors wait: worker slots in use vs. sensors parked in the triggerer.
            "while_waiting": {
                "samples": len(waiting),
                "median_deferred": _median([s["ti_deferred"] for s in waiting]),
                "median_celery_active": _median([s["celery_active"] or 0 for s in waiting]),
                "median_ti_running": _median([s["ti_running"] for s in waiting]),
                "median_job_tasks_running_in_worker": _median([s["job_tasks_running_in_worker"] for s in waiting]),
                "triggerer_cpu_pct_median": _median([s["triggerer"]["cpu_pct"] for s in waiting]),
                "triggerer_rss_mb_max": max((s["triggerer"]["rss_mb"] for s in waiting), default=0),
            },
            "describe_per_min_max": max((s["describe_last_minute"] for s in samples), default=0),
            "describe_total": samples[-1]["describe_total"] if samples else 0,
            "describe_per_job": round(samples[-1]["describe_total"] / max(1, 4 * args.batches), 1) if samples else 0,
            "create_calls_total": samples[-1]["create_total"] if samples else 0,
            # Where the drain's CPU went (2 cores: at most 2 x drain_s in all).
            "cpu_s_by_component": cpu_used,
            "cpu_s_total": round(sum(cpu_used.values()), 1),
            "task_instances": sum(n for state_, n in samples[-1]["ti_all"].items()) if samples else 0,
        }
    finally:
        with contextlib.suppress(Exception):
            stack.set_faults({})
        stack.close()
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"load_{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps({"summary": result, "samples": samples}, indent=1) + "\n")
        print(json.dumps(result, indent=2))
        print(f"samples and summary: {path}")
        if before is not None:
            keys = ("drain_s", "drained", "batch_statuses", "gt_jobs_created", "gt_job_names_unique",
                    "max_ti_running", "describe_total", "task_instances", "cpu_s_total")
            print(f"\n{'':<22}{'before ' + args.before:>28}{'after':>28}")
            for key in keys:
                print(f"{key:<22}{json.dumps(before.get(key)):>28}{json.dumps(result.get(key)):>28}")
            if before.get("drain_s") and result.get("drain_s"):
                print(f"drain after / before = {result['drain_s'] / before['drain_s']:.2f}")
        if own and not args.keep:
            subprocess.run([str(SCRIPT), "down"], env=env, check=False)
    return 0 if result.get("drained") and result.get("batch_statuses") == {"COMPLETE": args.batches} else 1


def _median(values: list[float]) -> float:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.exit(main())
