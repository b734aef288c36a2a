"""Two real trainings of one env at once (a synthetic problem), against one fresh sqlite store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import last_json, run_cli

pytestmark = pytest.mark.integration

GATE_RACE = Path(__file__).with_name("gate_race.py")


def test_two_concurrent_trainings_register_their_own_versions_and_agree_on_a_champion(
    synthetic_project, tmp_path
):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    environ = {
        **os.environ,
        "PYTHONPATH": str(synthetic_project),
        "MLFLOW_TRACKING_URI": store,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    # Both judge against the same (empty) champion, then race to move it: see gate_race.py.
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    command = [sys.executable, str(GATE_RACE), str(rendezvous), "train", "--env", "dev", "--json"]
    command += ["--problem", "synthetic_binary"]
    command += ["--set", "params.max_iter=20"]
    processes = [
        subprocess.Popen(
            command,
            cwd=synthetic_project,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    results = [last_json(stdout) for stdout, _ in outputs]
    assert len(list(rendezvous.iterdir())) == 2  # both reached the champion move together

    # Each process registered its own version and tagged it with its own run.
    assert sorted(result["model_version"] for result in results) == ["1", "2"]
    client = MlflowClient(tracking_uri=store)
    for result in results:
        version = client.get_model_version("synthetic_binary_dev", result["model_version"])
        assert version.run_id == version.tags["run_id"] == result["run_id"]
        assert version.tags["validation_status"] == "passed"

    # The champion is a version that passed, and the history agrees with it move by move.
    shown = run_cli(
        "show", "--env", "dev", "--problem", "synthetic_binary", "--json",
        cwd=synthetic_project, tracking_uri=store,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    described = json.loads(shown.stdout)
    champion = described["aliases"]["champion"]
    assert "challenger" not in described["aliases"]
    moves = [entry for entry in described["history"] if entry["alias"] == "champion"]
    assert [entry["from_version"] for entry in moves] == [None] + [
        entry["to_version"] for entry in moves[:-1]
    ]
    assert moves[-1]["to_version"] == champion
    assert {entry["to_version"] for entry in moves} <= {"1", "2"}
    # Identical trainings: the first to move took the empty champion; the second had judged
    # against none too, so its move was refused and it was judged again against the first.
    first = next(r for r in results if r["model_version"] != champion)["gate"]
    last = next(r for r in results if r["model_version"] == champion)["gate"]
    assert (first["attempts"], last["attempts"]) == (1, 2)
    assert (first["champion_before"], first["champion_after"]) == (None, first["version"])
    assert (last["champion_before"], last["champion_after"]) == (first["version"], champion)
    assert last["comparison"]["champion"] == last["comparison"]["challenger"]
