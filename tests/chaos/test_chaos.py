"""The promise under chaos: faults on both services, parallel runs, SIGKILLs, then the operator's
commands until nothing changes; at most one label per order, every order shipped with the PIN
Canada Post sold for it or parked with a reason, OR24 only after OR23, a row in api_calls for every
request, no lease left behind (see tests/chaos/harness.py for the run and the invariants).

Seeded: `FULFIL_CHAOS_SEED=<seed> pytest tests/chaos` replays a run's orders, faults and kills.
The sandbox is the test's own, not the session's: its fault draws follow the chaos seed, and
answers it still holds back (late answers) end with it instead of landing in another test's log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.harness import (
    SEED_VARIABLE,
    ChaosPlan,
    ChaosRun,
    chaos_env,
    chaos_sandbox,
    seed_from_environment,
)
from tests.shared_reference import shared_root


@pytest.mark.slow
def test_exactly_once_under_faults_kills_and_parallel_runs(
    cli_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    plan = ChaosPlan(seed=seed_from_environment())
    root = shared_root()
    # With the official XSDs at hand, every body fulfil sends is checked against them too.
    xsd = root / "reference" / "canadapost" / "xsd" if root else None
    with chaos_sandbox(plan, xsd_dir=xsd) as sandbox:
        env = chaos_env(
            cli_env,
            database_url=database_url,
            base_url=sandbox.base_url,
            labels_dir=tmp_path / "labels",
            workers=plan.workers,
        )
        result = ChaosRun(plan, database_url=database_url, sandbox=sandbox, env=env, work_dir=tmp_path).run()
    print(result.summary())
    if not result.ok:
        replay = f"{SEED_VARIABLE}={plan.seed} .venv/bin/pytest -q -p no:cacheprovider tests/chaos"
        pytest.fail(result.report(replay), pytrace=False)
