"""The multi-process stack for tests: `scripts/stack.sh up` once per module, `down` after it.

A module that wants it uses the `stack` fixture and the `stack` marker. The stack runs in its own
state dir (.smgt/stack-tests/<module>/), so its logs survive the run for a look after a failure.
A module may set `STACK_ENV = {...}` for stack.sh settings of its own, e.g.
`{"SMGT_STACK_WORKFORCE": "labelstudio"}` (the default is the simulated workforce, no Label Studio).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from stackctl import ROOT, Stack

#: Settings for every stack test: sensors poll every 5 s instead of 30 s.
TEST_ENV = {"SMGT_POKE_INTERVAL": "5"}


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without Airflow/AWS/smgt settings: a unit test's sqlite DB or a
    developer's real AWS profile must not leak into the stack. SMGT_STACK_* (stack.sh's own
    settings) pass."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith("SMGT_STACK_") or not k.startswith(("AIRFLOW", "AWS_", "SMGT_", "_AIRFLOW"))}
    env.update(extra or {})
    return env


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Any:
    module = Path(str(request.node.path)).stem
    state = ROOT / ".smgt" / "stack-tests" / module
    env = clean_env({**TEST_ENV, **getattr(request.module, "STACK_ENV", {}), "SMGT_STACK_DIR": str(state)})
    script = str(ROOT / "scripts" / "stack.sh")
    subprocess.run([script, "down"], env=env, check=False, capture_output=True)  # an old run's leftovers
    t0 = time.monotonic()
    up = subprocess.run([script, "up"], env=env, capture_output=True, text=True, timeout=400)
    if up.returncode != 0:
        subprocess.run([script, "down"], env=env, check=False, capture_output=True)
        pytest.fail(f"scripts/stack.sh up failed ({up.returncode}):\n{up.stderr[-4000:]}")
    s = Stack(state, env)
    s.timings["stack_up_s"] = round(time.monotonic() - t0, 1)
    try:
        yield s
    finally:
        s.close()
        t1 = time.monotonic()
        down = subprocess.run([script, "down"], env=env, capture_output=True, text=True, timeout=120)
        s.timings["stack_down_s"] = round(time.monotonic() - t1, 1)
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(f"stack timings ({module}, logs in {state}/logs):")
            for key, value in s.timings.items():
                reporter.write_line(f"  {key}: {value}")
        s.write_timings()
        assert down.returncode == 0, down.stderr[-2000:]
