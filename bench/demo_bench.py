"""Benchmark: the README demo (`scripts/demo.sh` = `python -m smgt.demo`) end to end, phase by phase.

    .venv/bin/python bench/demo_bench.py                    # the working tree's demo, once
    .venv/bin/python bench/demo_bench.py --runs 2           # twice (a figure is the median)
    .venv/bin/python bench/demo_bench.py --before c172b20   # also the demo at that commit, same run

Runs the real demo (every process, the notebook's 4-job batch through the batch HTTP API) in a
child process whose LocalDeployment / EmbeddedAirflow / SeaweedFS methods are wrapped to record
when each step begins and ends (nothing else changes; the demo's own output is captured and
timestamped line by line). `--before REV` runs the demo of commit REV the same way, from a
temporary git worktree with this venv, alternating with the working tree's runs. Then prints per
run:

- the deployment's start: SeaweedFS, the emulator, the demo video upload, `airflow db migrate`,
  the api-server until healthy, the smgt_batch DAG until parsed and unpaused;
- the notebook flow (its own progress lines): inputs uploaded, batch/create, batch/show and
  workforce/show, until WAIT_FOR_META_DATA_INPUT, the rate post, until COMPLETE, the download;
- the DAG run from Airflow's database: every task's queued -> start latency and run time, and
  each level's span;
- the shutdown, and the total wall time;
and the load average of the machine before and after (timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------- child


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop what was started, as Ctrl-C does


def _child(root: Path, work: Path, events_path: Path) -> int:
    """Run `smgt.demo` of `root` in this process with its start/stop steps timed."""
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path.insert(0, str(root / "plugins"))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(root / "plugins"), os.environ.get("PYTHONPATH", "")])
    events: list[dict[str, Any]] = []

    def record(what: str, begin: float, end: float) -> None:
        events.append({"what": what, "begin": begin, "end": end})

    def wrap(owner: Any, name: str, label: Any) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                record(label(args, kwargs), t0, time.time())

        setattr(owner, name, timed)

    import smgt.demo
    import smgt.deployment
    import smgt.embedded
    from smgt.local.seaweedfs import SeaweedFS

    dep, emb = smgt.deployment.LocalDeployment, smgt.embedded.EmbeddedAirflow
    wrap(dep, "start", lambda a, k: "deployment: start (all)")
    wrap(dep, "start_component", lambda a, k: f"deployment: start {a[1]}")
    wrap(dep, "stop", lambda a, k: "deployment: stop (all)")
    wrap(dep, "_stop_emulator", lambda a, k: "stop: emulator")
    wrap(smgt.deployment, "upload_demo_data", lambda a, k: "deployment: upload the demo video")
    wrap(emb, "start", lambda a, k: "airflow: start (all)")
    wrap(emb, "_finish_migrate", lambda a, k: "airflow: wait for db migrate")
    wrap(emb, "_warm_execution_api", lambda a, k: "airflow: first execution API request")
    wrap(emb, "wait_for", lambda a, k: f"airflow: wait for {a[2] if len(a) > 2 else k.get('what')}")
    wrap(emb, "start_servers", lambda a, k: "airflow: start servers (migrate, api-server, dag-processor)")
    wrap(emb, "start_workers", lambda a, k: "airflow: start workers (scheduler, triggerer), DAG unpaused")
    wrap(emb, "stop_runners", lambda a, k: "stop: airflow runners (scheduler, triggerer, dag-processor)")
    wrap(emb, "stop", lambda a, k: "stop: airflow stop() (what still runs)")
    real_stop = dep.stop

    def stop_watched(self: Any) -> None:
        """Also record when each Airflow component exits after the deployment's stop began."""
        t0, done = time.time(), threading.Event()

        def watch() -> None:
            left = dict(self.airflow.processes) if self.airflow is not None else {}
            while left and not done.is_set():
                for name, proc in list(left.items()):
                    if proc.poll() is not None:
                        record(f"  stop: airflow {name} exited", t0, time.time())
                        del left[name]
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            real_stop(self)
        finally:
            watcher.join(1)
            done.set()

    dep.stop = stop_watched
    wrap(SeaweedFS, "stop", lambda a, k: "stop: seaweedfs")

    real_run, real_popen = subprocess.run, subprocess.Popen

    def run(argv: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.time()
        try:
            return real_run(argv, *args, **kwargs)
        finally:
            text = " ".join(map(str, argv)) if isinstance(argv, list | tuple) else str(argv)
            if "db migrate" in text:
                record("airflow: db migrate", t0, time.time())
            elif "notebook_flow.py" in text:
                record("notebook flow (subprocess)", t0, time.time())

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, argv: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(argv, *args, **kwargs)
            text = " ".join(map(str, argv)) if isinstance(argv, list | tuple) else str(argv)
            if "db migrate" in text:
                record("airflow: db migrate started (background)", time.time(), time.time())

    subprocess.run = run
    subprocess.Popen = Popen  # type: ignore[misc]
    t0 = time.time()
    try:
        return smgt.demo.main(["--work-dir", str(work)])
    finally:
        record("demo: main()", t0, time.time())
        events_path.write_text(json.dumps(events))


# --------------------------------------------------------------------------------------- parent


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _utc(text: str | None) -> float | None:
    if not text:
        return None
    stamp = datetime.fromisoformat(text.replace(" ", "T"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def run_demo(root: Path, work: Path) -> dict[str, Any]:
    """One demo run of `root`: its timestamped output lines, the child's events, Airflow's task instances."""
    shutil.rmtree(work, ignore_errors=True)
    events_path = work.with_suffix(".events.json")
    env = {**os.environ, "PYTHONPATH": str(root / "plugins"), "PYTHONUNBUFFERED": "1"}
    load_before = _loadavg()
    t0 = time.time()
    child = subprocess.Popen([sys.executable, __file__, "--child", str(root), str(work), str(events_path)],
                             cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []
    assert child.stdout is not None
    try:
        for line in child.stdout:
            lines.append((time.time(), line.rstrip("\n")))
        child.wait()
    except BaseException:  # Ctrl-C or SIGTERM: the child stops its deployment first
        child.send_signal(signal.SIGINT)
        child.wait(timeout=120)
        raise
    total = time.time() - t0
    if child.returncode != 0 or not any("[demo] done" in text for _, text in lines):
        tail = "\n".join(text for _, text in lines[-40:])
        raise SystemExit(f"the demo of {root} failed ({child.returncode}):\n{tail}")
    events = json.loads(events_path.read_text())
    db = sqlite3.connect(f"file:{work}/airflow/airflow.db?mode=ro", uri=True)
    tis = [dict(zip(("task", "map", "state", "queued", "start", "end"), row, strict=True)) for row in db.execute(
        "select task_id, map_index, state, queued_dttm, start_date, end_date from task_instance"
        " where start_date is not null order by start_date, map_index")]
    run = db.execute("select queued_at, start_date, end_date from dag_run").fetchone()
    db.close()
    return {"root": str(root), "t0": t0, "total": total, "lines": lines, "events": events, "tis": tis,
            "run": run, "load": (load_before, _loadavg())}


def _first(lines: list[tuple[float, str]], pattern: str, after: float = 0.0) -> float | None:
    rx = re.compile(pattern)
    return next((t for t, text in lines if t >= after and rx.search(text)), None)


def phases(result: dict[str, Any]) -> list[tuple[str, float]]:
    """(phase, seconds), in order; the main phases add up to the total."""
    t0, lines, events = result["t0"], result["lines"], result["events"]

    def span(what: str) -> float | None:
        hits = [e for e in events if e["what"] == what]
        return sum(e["end"] - e["begin"] for e in hits) if hits else None

    def event(what: str) -> dict[str, Any] | None:
        return next((e for e in events if e["what"] == what), None)

    out: list[tuple[str, float]] = []
    start, stop, main = event("deployment: start (all)"), event("deployment: stop (all)"), event("demo: main()")
    assert start and stop and main
    out.append(("python start + imports", start["begin"] - t0))
    out.append(("deployment start (total)", start["end"] - start["begin"]))
    for what in ("deployment: start seaweedfs", "deployment: start emulator", "deployment: upload the demo video",
                 "airflow: db migrate", "airflow: wait for db migrate", "airflow: start (all)",
                 "airflow: start servers (migrate, api-server, dag-processor)",
                 "airflow: start workers (scheduler, triggerer), DAG unpaused",
                 "airflow: wait for the api-server", "airflow: first execution API request",
                 "airflow: wait for the smgt_batch DAG to be parsed"):
        seconds = span(what)
        if seconds is not None:
            out.append((f"  {what}", seconds))
    flow_begin = start["end"]
    stamps = [
        ("notebook flow: inputs built and uploaded", r"uploaded \d+ files"),
        ("notebook flow: batch/create", r"batch/create:"),
        ("notebook flow: batch/show, workforce/show", r"workforce/show: SECONDARY"),
        ("notebook flow: until WAIT_FOR_META_DATA_INPUT seen", r": WAIT_FOR_META_DATA_INPUT$"),
        ("notebook flow: batch-metadata/post (rate 50)", r"batch-metadata/post:"),
        ("notebook flow: until COMPLETE seen", r": COMPLETE$"),
        ("notebook flow: download output, exit", r"\[notebook-flow\] OK"),
    ]
    previous = flow_begin
    for name, pattern in stamps:
        at = _first(lines, pattern, previous)
        if at is None:
            continue
        out.append((name, at - previous))
        previous = at
    out.append(("demo: batch detail printed", (_first(lines, r"\[demo\] batch .*: COMPLETE", previous) or previous)
                - previous))
    out.append(("shutdown (total)", stop["end"] - stop["begin"]))
    for what in ("stop: airflow runners (scheduler, triggerer, dag-processor)", "stop: airflow stop() (what still runs)",
                 *(f"  stop: airflow {name} exited" for name in
                 ("api-server", "scheduler", "dag-processor", "triggerer")), "stop: emulator", "stop: seaweedfs"):
        seconds = span(what)
        if seconds is not None:
            out.append((f"  {what}", seconds))
    out.append(("total (wall, from launching python)", result["total"]))
    return out


def task_table(result: dict[str, Any]) -> list[str]:
    run = result["run"]
    base = _utc(run[0])
    rows = [f"  DAG run: queued -> end {(_utc(run[2]) or 0) - base:6.1f} s"
            f" (queued at +{base - result['t0']:.1f} s of the demo)",
            f"  {'task':<30}{'map':>4}  {'queued':>7}{'q->start':>9}{'run':>7}{'end':>8}  state"]
    levels: dict[str, list[float]] = {}
    for ti in result["tis"]:
        queued, start, end = _utc(ti["queued"]), _utc(ti["start"]), _utc(ti["end"])
        wait = f"{start - queued:9.1f}" if queued and start and start >= queued else f"{'(resumed)':>9}"
        ran = f"{end - start:7.1f}" if end and start else f"{'-':>7}"
        rows.append(f"  {ti['task']:<30}{ti['map']:>4}  {(queued or start) - base:7.1f}{wait}{ran}"
                    f"{(end or start) - base:8.1f}  {ti['state']}")
        group = ti["task"].split(".")[0] if ti["task"].startswith("level_") else ti["task"]
        levels.setdefault(group, []).extend(t for t in (queued or start, end) if t)
    for group, moments in levels.items():
        rows.append(f"  span {group:<25} {min(moments) - base:6.1f} -> {max(moments) - base:6.1f}"
                    f" = {max(moments) - min(moments):5.1f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        return _child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="also run the demo at this commit (a temporary git worktree)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each variant")
    parser.add_argument("--tasks", action="store_true", help="print every run's task instance timings")
    parser.add_argument("--keep", action="store_true", help="keep the runs' state directories (logs, database)")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGTERM, _interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="demo-bench-"))
    variants: list[tuple[str, Path]] = [("after (working tree)", ROOT)]
    worktree = None
    if args.before:
        worktree = tmp / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        variants.insert(0, (f"before ({args.before})", worktree))
    print(f"machine: {os.cpu_count()} cores, load average {_loadavg()}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    try:
        for i in range(args.runs):
            for name, root in variants:
                print(f"run {i + 1}/{args.runs}: {name} ...", flush=True)
                result = run_demo(root, tmp / f"work-{len(results[name])}-{root.name}")
                results[name].append(result)
                print(f"  {result['total']:.1f} s (load {result['load'][0]} -> {result['load'][1]})", flush=True)
    finally:
        if worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False,
                           capture_output=True)
    for name, runs in results.items():
        for i, result in enumerate(runs):
            print(f"\n=== {name}, run {i + 1}: {result['total']:.1f} s"
                  f" (load average before {result['load'][0]}, after {result['load'][1]}) ===")
            for phase, seconds in phases(result):
                print(f"  {phase:<58}{seconds:7.1f} s")
            if args.tasks or i == 0:
                print("  Airflow task instances (seconds from the DAG run's queued_at):")
                print("\n".join(task_table(result)))
    print("\n=== summary (wall time of the whole demo, median of runs) ===")
    for name, runs in results.items():
        totals = [r["total"] for r in runs]
        print(f"  {name:<40}{statistics.median(totals):7.1f} s   runs: {', '.join(f'{t:.1f}' for t in totals)}")
    print(f"machine load average at the end: {_loadavg()}")
    if args.keep:
        print(f"state directories kept under {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
