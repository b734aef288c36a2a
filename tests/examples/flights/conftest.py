"""The demo's dev model, trained once for the session and shared by the modules that only read
it or score with it (test_flights_cli.py, test_scoring.py), whichever xdist worker runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import built_once, empty_store, last_json, run_cli


@pytest.fixture(scope="session")
def flights_dev(project_copy, tmp_path_factory) -> dict:
    """One `train --env dev --problem flights` (dev.yaml as it is) in its own store:
    {"uri", "result"}. It passes its gate, so its version is the champion."""

    def build(folder: Path) -> dict:
        uri = empty_store(folder)
        done = run_cli(
            "train", "--env", "dev", "--problem", "flights", "--json",
            cwd=project_copy, tracking_uri=uri,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return {"uri": uri, "result": last_json(done.stdout)}

    return built_once(tmp_path_factory, "flights-dev", build)
