"""Benchmark: the local deployment's components and the README demo, before and after SeaweedFS.

    .venv/bin/python bench/local_deployment_bench.py                      # everything (~6 min)
    .venv/bin/python bench/local_deployment_bench.py --before a41b374     # the demo 'before' commit

Prints, all measured in this one run:
- the README demo (`python -m smgt.demo`) wall time at `--before` (a commit whose emulator keeps S3
  in moto's memory, checked out in a temporary git worktree and run with this venv) and at the
  working tree (S3 on SeaweedFS, the local deployment), one after the other;
- SeaweedFS: start to first signed answer (cold, and a restart of the same data dir), RSS idle;
- Label Studio (its own venv): first start on a new data dir (migrations), a restart, RSS after
  the first start and after a restart, `ensure_users` for the 5 work-team members, data dir size;
- `.venv-labelstudio` install time is not re-measured here (it needs an empty venv and cache): see
  `scripts/bootstrap.sh --labelstudio` with `LABELSTUDIO_VENV=/tmp/x UV_CACHE_DIR=/tmp/y`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from smgt.embedded import free_port  # noqa: E402


def timed_demo(root: Path, work: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(root / "plugins")}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "smgt.demo", "--work-dir", str(work)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - t0
    if done.returncode != 0 or "COMPLETE" not in done.stdout:
        raise SystemExit(f"the demo at {root} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def seaweedfs_figures(tmp: Path) -> dict[str, float]:
    from smgt.local.seaweedfs import SeaweedFS

    store = SeaweedFS(tmp / "s3", s3_port=free_port(), access_key="bench" + secrets.token_hex(4),
                      secret_key=secrets.token_hex(16))
    t0 = time.monotonic()
    store.start()
    cold = time.monotonic() - t0
    time.sleep(5)
    idle = rss_mb(store.pid)
    t0 = time.monotonic()
    store.stop()
    stop = time.monotonic() - t0
    t0 = time.monotonic()
    store.start()
    restart = time.monotonic() - t0
    store.stop()
    return {"start_s": cold, "restart_s": restart, "sigterm_stop_s": stop, "rss_idle_mb": idle}


def labelstudio_figures(tmp: Path) -> dict[str, float]:
    from smgt.deployment import worker_password
    from smgt.local.bootstrap import USERS, worker_email
    from smgt.local.labelstudio.server import LabelStudioServer

    server = LabelStudioServer(tmp / "ls", port=free_port(), admin_email="admin@bench.local",
                               admin_password=secrets.token_hex(8), api_token=secrets.token_hex(20))
    t0 = time.monotonic()
    server.start()
    first = time.monotonic() - t0
    after_first = rss_mb(server.pid)
    t0 = time.monotonic()
    server.ensure_users([(worker_email(u), worker_password("bench", u)) for users in USERS.values() for u in users])
    users = time.monotonic() - t0
    server.stop()
    t0 = time.monotonic()
    server.start()
    restart = time.monotonic() - t0
    time.sleep(10)
    idle = rss_mb(server.pid)
    server.stop()
    size = sum(f.stat().st_size for f in (tmp / "ls").rglob("*") if f.is_file()) / 2**20
    return {"first_start_s": first, "restart_s": restart, "rss_after_first_start_mb": after_first,
            "rss_idle_after_restart_mb": idle, "ensure_users_5_s": users, "data_dir_mb": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="a41b374", help="commit of the demo before SeaweedFS")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="smgt-deploy-bench-"))
    try:
        print("component figures (this machine, one run)")
        for name, figures in (("SeaweedFS", seaweedfs_figures(tmp)), ("Label Studio", labelstudio_figures(tmp))):
            for key, value in figures.items():
                print(f"  {name:<13} {key:<28} {value:8.1f}")
        if not args.skip_demo:
            before = tmp / "before"
            subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True,
                           capture_output=True)
            try:
                old = timed_demo(before, tmp / "demo-before")
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, capture_output=True)
            new = timed_demo(ROOT, tmp / "demo-after")
            print("README demo (python -m smgt.demo), wall time")
            print(f"  before ({args.before}, S3 in moto's memory)   {old:6.1f} s")
            print(f"  after  (working tree, S3 on SeaweedFS)   {new:6.1f} s   ratio {new / old:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
