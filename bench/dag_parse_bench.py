"""DAG parse time: 100 recurring-batch files vs 100 trivial two-task DAG files.

    .venv/bin/python bench/dag_parse_bench.py [--files 100] [--repeat 3]

Two measures, both printed with the ratio recurring/trivial (target <= 3x):

1. processor: one pass of the real `airflow dag-processor --num-runs 1` over each folder (fresh
   SQLite DB each, migrated before timing), minus the same pass over an empty folder (start-up).
   This is what a deployment pays: per-file subprocesses, serialization, DB writes.
2. dagbag: Airflow's DagBag filled in one fresh process (module execution only; best of --repeat).
   The recurring side builds 100 DAGs of ~12 tasks in one module, the trivial side 100 x 2 tasks,
   so this isolates the cost of constructing operators.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TRIVIAL_DAG = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="trivial_{i}", schedule=None):
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
'''

MEASURE = r'''
import json, sys, time
t0 = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
t1 = time.perf_counter()
bag = DagBag(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "parse_s": t2 - t1, "dags": len(bag.dags),
                  "tasks": sum(len(d.tasks) for d in bag.dags.values()), "errors": len(bag.import_errors)}))
'''


def measure(folder: Path, env: dict[str, str], repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", MEASURE, str(folder)], env=env, check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    return min(runs, key=lambda r: r["parse_s"])


def processor_pass(folder: Path, env: dict[str, str], home: Path) -> float:
    env = dict(env, AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(folder),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db")
    home.mkdir(parents=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run([airflow, "dag-processor", "--num-runs", "1"], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="smgt-parse-bench-"))
    try:
        trivial = work / "trivial"
        trivial.mkdir()
        for i in range(args.files):
            (trivial / f"trivial_{i}.py").write_text(TRIVIAL_DAG.format(i=i))

        recurring, batches = work / "recurring", work / "batches"
        recurring.mkdir()
        batches.mkdir()
        shutil.copy(ROOT / "dags" / "smgt_recurring.py", recurring / "smgt_recurring.py")
        template = (ROOT / "include" / "batches" / "street_daily.yaml").read_text()
        for i in range(args.files):
            (batches / f"street_{i}.yaml").write_text(template.replace("street-daily", f"street-{i}"))

        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(work / "home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work}/home/airflow.db",
            "PYTHONPATH": str(ROOT / "plugins"),
            "SMGT_BATCHES_DIR": str(batches),
        })
        empty = work / "empty"
        empty.mkdir()
        processor = {name: processor_pass(folder, env, work / f"home-{name}")
                     for name, folder in (("empty", empty), ("trivial", trivial), ("recurring", recurring))}
        results = {"trivial": measure(trivial, env, args.repeat), "recurring": measure(recurring, env, args.repeat)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("1. dag-processor, one pass (wall s, start-up of an empty pass subtracted)")
    net = {name: processor[name] - processor["empty"] for name in ("trivial", "recurring")}
    print(f"   empty {processor['empty']:.2f}  trivial {net['trivial']:.2f}  recurring {net['recurring']:.2f}"
          f"  ratio {net['recurring'] / net['trivial']:.2f}x (target <= 3x)")
    print("2. DagBag fill in one process")
    print(f"   {'case':<11}{'DAGs':>6}{'tasks':>7}{'errors':>8}{'parse s':>10}")
    for name, r in results.items():
        print(f"   {name:<11}{r['dags']:>6}{r['tasks']:>7}{r['errors']:>8}{r['parse_s']:>10.3f}")
    ratio = results["recurring"]["parse_s"] / results["trivial"]["parse_s"]
    print(f"   ratio recurring/trivial: {ratio:.2f}x")


if __name__ == "__main__":
    main()
