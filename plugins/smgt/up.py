"""`scripts/up.sh`: keep the local deployment running for people to label, until stopped.

    scripts/up.sh                 Label Studio workforce + Airflow on .smgt/local (kept across runs)
    scripts/up.sh --simulated     simulated workers instead of Label Studio
    scripts/up.sh --reset         delete the state directory first (says what it deletes, asks)

Starts SeaweedFS (S3), Label Studio, the local Ground Truth and Airflow (see smgt.deployment),
uploads the demo video on the first start, prints the URLs and logins, and stays up until Ctrl-C or
SIGTERM, then stops every component. A component that exits on its own is started again (and said
so). Starting it again on the same state directory shows the same batches, jobs and outputs, and
running batches go on.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from smgt.deployment import (
    DEFAULT_STATE_DIR,
    DeploymentError,
    LocalDeployment,
    check_workforce,
    looks_like_state_dir,
    reset,
)

WATCH_SECONDS = 5.0


def _confirm_reset(state_dir: Path, assume_yes: bool) -> bool:
    """Whether to delete `state_dir` (which exists): asked, unless --yes; never for a folder that is
    not a state directory."""
    if not looks_like_state_dir(state_dir):
        print(f"--reset: {state_dir} is not a deployment's state directory (no deployment.json); not deleting it",
              file=sys.stderr)
        return False
    parts = sorted(p.name for p in state_dir.iterdir())
    print(f"--reset deletes {state_dir} and everything in it: {', '.join(parts) or '(empty)'}")
    label_studio = "Label Studio projects and annotations, " if "labelstudio" in parts else ""
    print(f"  (S3 data, labeling jobs, {label_studio}Airflow's database and logs)")
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        print("not a terminal: add --yes to confirm", file=sys.stderr)
        return False
    return input("type 'yes' to delete it: ").strip().lower() == "yes"


def print_access(local: LocalDeployment) -> None:
    """The URLs and logins a team needs (printed once the deployment is up)."""
    assert local.airflow is not None
    passwords = local.airflow.passwords
    print("\n=== smgt local deployment is up ===", flush=True)
    print(f"state directory : {local.state_dir}  (back up: stop, then copy the folder)")
    print(f"Airflow         : {local.airflow.url}   login admin / {passwords['admin']}")
    print(f"                  also user / {passwords['user']} (may trigger batches), "
          f"viewer / {passwords['viewer']} (read only)")
    print("                  trigger the smgt_batch DAG, or use the batch API under /smgt (page: /smgt/ui)")
    if local.labelstudio is not None:
        print(f"Label Studio    : {local.labelstudio.url}   admin {local.labelstudio.admin_email} / "
              f"{local.labelstudio.admin_password}")
        print("  labelers (log in with e-mail and password; a password changed in Label Studio stays changed):")
        for login in local.worker_logins():
            print(f"    {login['team']:<28} {login['email']:<28} {login['password']}")
    else:
        print("workforce       : simulated workers (no Label Studio)")
    store = local.s3_store
    print(f"S3 (SeaweedFS)  : {store.endpoint_url}   access key {store.access_key} / secret {store.secret_key}")
    print(f"Ground Truth    : {local.emulator_url}   (SageMaker, SNS, SQS, Cognito)")
    print("environment for boto3 / the AWS CLI / notebooks:")
    for key, value in sorted(local.env().items()):
        if not key.startswith("AIRFLOW_CONN_"):
            print(f"  export {key}='{value}'")
    print("Ctrl-C stops every component; the state directory stays.\n", flush=True)


def watch(local: LocalDeployment, stop: threading.Event) -> None:
    """Start again any component that exited on its own, until `stop` is set."""
    while not stop.wait(WATCH_SECONDS):
        for name, status in local.dead_components().items():
            if stop.is_set():
                return
            print(f"[{time.strftime('%H:%M:%S')}] {name} exited (status {status}); starting it again "
                  f"(its log is under {local.state_dir})", flush=True)
            try:
                local.start_component(name)
                print(f"[{time.strftime('%H:%M:%S')}] {name} is up again", flush=True)
            except Exception as exc:  # keep watching the others; say what went wrong
                print(f"[{time.strftime('%H:%M:%S')}] {name} did not start again: {exc}", flush=True)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM while starting: stop what was started, as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/up.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help=f"where everything is kept (default {DEFAULT_STATE_DIR})")
    parser.add_argument("--simulated", action="store_true", help="simulated workers instead of Label Studio")
    parser.add_argument("--task-seconds", type=float, default=2.0, help="simulated workers: seconds per wave of tasks")
    parser.add_argument("--reset", action="store_true", help="delete the state directory first")
    parser.add_argument("--yes", action="store_true", help="with --reset: do not ask")
    parser.add_argument("--any-ports", action="store_true",
                        help="on the first start take any free ports, not 8080 (Airflow), 8090 (Label Studio), ...")
    parser.add_argument("--check-workforce", action="store_true", help=argparse.SUPPRESS)  # scripts/up.sh
    args = parser.parse_args(argv)
    workforce = "simulated" if args.simulated else "labelstudio"
    if args.check_workforce:  # before scripts/up.sh installs Label Studio for a state dir that will refuse it
        try:
            if not args.reset:
                check_workforce(args.state_dir, workforce)
        except (DeploymentError, OSError, ValueError) as exc:
            print(f"scripts/up.sh: {exc}", file=sys.stderr)
            return 1
        return 0

    try:
        if args.reset and not args.state_dir.exists():
            print(f"--reset: {args.state_dir} does not exist; nothing to delete")
        elif args.reset:
            if not _confirm_reset(args.state_dir, args.yes):
                print("nothing deleted")
                return 1
            deleted = reset(args.state_dir)
            print(f"deleted {args.state_dir} ({len(deleted)} entries)")
        first = not (args.state_dir / "deployment.json").exists()
        local = LocalDeployment(args.state_dir, workforce=workforce,
                                task_seconds=args.task_seconds, preferred_ports=not args.any_ports)
        print(f"starting the local deployment on {args.state_dir}"
              f"{' (the first start takes a few minutes)' if first else ''} ...", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        local.start(progress=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130
    except (DeploymentError, OSError, RuntimeError, ValueError) as exc:
        print(f"scripts/up.sh: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        print_access(local)
        watch(local, stop)
    finally:
        print("stopping ...", flush=True)
        local.stop()
        print("stopped; state kept in", local.state_dir, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
