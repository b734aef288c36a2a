"""Batch scoring through the real CLI: the champion's predictions, exactly, with its version."""

import pandas as pd
import pytest

from tests.conftest import last_json, run_cli
from tests.integration.conftest import in_process_predictions

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_batch_scoring_matches_in_process_predictions(scoring_store, project_copy, suffix):
    output = scoring_store["folder"] / f"scored{suffix}"
    done = run_cli(
        "predict",
        "--env",
        "dev",
        "--input",
        str(scoring_store["batch"]),
        "--output",
        str(output),
        "--chunk-rows",
        "700",
        "--json",
        cwd=project_copy,
        tracking_uri=scoring_store["uri"],
    )
    assert done.returncode == 0, done.stderr
    summary = last_json(done.stdout)
    assert summary["rows"] == 3000 and summary["model_uri"] == "models:/flights_delay_dev@champion"
    assert summary["rows_per_second"] > 0
    scored = pd.read_parquet(output) if suffix == ".parquet" else pd.read_csv(output)
    expected = in_process_predictions(
        scoring_store["uri"],
        "models:/flights_delay_dev@champion",
        scoring_store["batch"],
        project_copy,
    )
    assert scored["probability"].tolist() == expected["probability"]
    assert scored["prediction"].tolist() == expected["prediction"]
    version = scoring_store["result"]["model_version"]
    assert set(scored["model_name"]) == {"flights_delay_dev"}
    assert set(scored["model_version"].astype(str)) == {version}
    assert set(scored["model_run_id"]) == {scoring_store["result"]["run_id"]}
    assert len(scored) == 3000


def test_an_explicit_model_uri_is_used(scoring_store, project_copy):
    output = scoring_store["folder"] / "by-version.parquet"
    done = run_cli(
        "predict",
        "--env",
        "dev",
        "--input",
        str(scoring_store["batch"]),
        "--output",
        str(output),
        "--model-uri",
        "models:/flights_delay_dev/1",
        cwd=project_copy,
        tracking_uri=scoring_store["uri"],
    )
    assert done.returncode == 0, done.stderr
    assert set(pd.read_parquet(output)["model_version"]) == {"1"}


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda f: f.drop(columns=["dest"]), "missing column(s) dest"),
        (
            lambda f: f.assign(distance=f["distance"].astype(str).where(f.index != 2500, "far")),
            "distance",
        ),
    ],
)
def test_bad_input_fails_cleanly_with_no_output(
    scoring_store, project_copy, tmp_path, corrupt, message
):
    bad = tmp_path / "bad.csv"
    corrupt(pd.read_parquet(scoring_store["batch"])).to_csv(bad, index=False)
    output = tmp_path / "out" / "scored.parquet"
    output.parent.mkdir()
    done = run_cli(
        "predict",
        "--env",
        "dev",
        "--input",
        str(bad),
        "--output",
        str(output),
        "--chunk-rows",
        "1000",
        cwd=project_copy,
        tracking_uri=scoring_store["uri"],
    )
    assert done.returncode == 3, done.stderr
    assert message in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr
    assert list(output.parent.iterdir()) == []  # no output, no partial file


def test_no_champion_is_a_registry_error(project_copy, tracking_uri, tmp_path):
    done = run_cli(
        "predict",
        "--env",
        "staging",
        "--input",
        str(tmp_path / "x.csv"),
        "--output",
        str(tmp_path / "y.csv"),
        cwd=project_copy,
        tracking_uri=tracking_uri,
    )
    assert done.returncode == 8
    assert "models:/flights_delay_staging@champion" in done.stderr
