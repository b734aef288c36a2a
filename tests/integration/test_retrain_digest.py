"""Two identical retrains (same commit, config, seed and data) upload other bytes (MLmodel names
its run and time; the skops file names its entries after object ids and stamps their times) and
record the same skops content digest (model.content_sha256), which is that of the file the
artifact store holds."""

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ml_project import model_digest
from tests.conftest import last_json, run_cli

pytestmark = pytest.mark.integration


def files_of(tags: dict[str, str]) -> dict[str, str]:
    """model.files_sha256 (`MLmodel=<hex>;model.skops=<hex>`) as {file: sha256}."""
    return dict(item.split("=", 1) for item in tags["model.files_sha256"].split(";"))


def test_a_retrain_uploads_other_bytes_and_records_the_same_content_digest(
    synthetic_project, synthetic_models, store_uri, tmp_path
):
    first, uri = synthetic_models["binary"], store_uri  # a new store: the registry's too
    done = run_cli("train", "--env", "dev", "--problem", first["problem"], "--json",
                   cwd=synthetic_project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = last_json(done.stdout)
    one = MlflowClient(first["uri"]).get_run(first["result"]["run_id"]).data.tags
    two = MlflowClient(uri).get_run(second["run_id"]).data.tags
    assert one["git.commit"] == two["git.commit"] and one["seed"] == two["seed"]
    assert one["data.digest"] == two["data.digest"]
    assert one["predictions.digest"] == two["predictions.digest"]  # the same model, by its output
    files_one, files_two = files_of(one), files_of(two)
    assert set(files_one) == {"MLmodel", "model.skops"}
    assert all(files_one[name] != files_two[name] for name in files_one)  # both files' bytes
    assert len(one["model.content_sha256"]) == 64
    assert one["model.content_sha256"] == two["model.content_sha256"]

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=second["model_uri"], dst_path=str(tmp_path / "model"), tracking_uri=uri
        )
    )
    assert model_digest.file_content_digest(local / "model.skops") == two["model.content_sha256"]
