"""`reproduce` proves the registered artifact itself, not only what the run recorded: a model
file replaced in the artifact store after registration (the bytes `predict` and serving load)
is never called "identical"."""

import pickle
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from tests.conftest import copy_store, last_json, run_cli

pytestmark = pytest.mark.integration


def tampered_copy(synthetic_models, kind: str, folder: Path) -> tuple[str, Path]:
    """A copy of the store whose version 1 of `kind` reads its files from a copy of them (the
    shared artifacts stay untouched): the store's URI and that copy's folder."""
    uri = copy_store(synthetic_models[kind]["uri"], folder)
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version(f"synthetic_{kind}_dev", "1")
    model_id = version.source.removeprefix("models:/")  # the logged model it was made from
    location = client.get_logged_model(model_id).artifact_location
    files = folder / "artifacts"
    shutil.copytree(Path(location.removeprefix("file://")), files)
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE logged_models SET artifact_location = ? WHERE model_id = ?",
            (files.as_uri(), model_id),
        )
        db.execute(  # where the registry serves the version's files from
            "UPDATE model_versions SET storage_location = ? WHERE name = ? AND version = 1",
            (files.as_uri(), f"synthetic_{kind}_dev"),
        )
    return uri, files


def reproduce(project: Path, uri: str, kind: str):
    return run_cli(
        "reproduce",
        "--env",
        "dev",
        "--problem",
        f"synthetic_{kind}",
        "--version",
        "1",
        "--json",
        cwd=project,
        tracking_uri=uri,
    )


class Payload:
    """What an attacker's pickle would hold (harmless here: never unpickled by the project)."""

    def __reduce__(self):
        return (print, ("pwned",))


def as_pickle(files: Path) -> None:
    """The model file replaced by a pickle, its MLmodel saying so."""
    mlmodel_path = files / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    flavor = mlmodel["flavors"]["sklearn"]
    (files / flavor["pickled_model"]).unlink()
    (files / "model.pkl").write_bytes(pickle.dumps(Payload()))
    flavor.update(serialization_format="cloudpickle", pickled_model="model.pkl")
    mlmodel["flavors"]["python_function"]["model_path"] = "model.pkl"
    mlmodel_path.write_text(yaml.safe_dump(mlmodel))


def pickle_in_place(files: Path) -> None:
    """The skops file's bytes replaced by a pickle, its name and MLmodel left as they were."""
    flavor = yaml.safe_load((files / "MLmodel").read_text())["flavors"]["sklearn"]
    (files / flavor["pickled_model"]).write_bytes(pickle.dumps(Payload()))


@pytest.mark.parametrize("tamper", [as_pickle, pickle_in_place], ids=["as-pickle", "in-place"])
def test_a_replaced_model_file_is_not_reproduced(
    tamper, synthetic_project, synthetic_models, tmp_path
):
    uri, files = tampered_copy(synthetic_models, "binary", tmp_path)
    tamper(files)
    done = reproduce(synthetic_project, uri, "binary")
    assert done.returncode == 6, done.stderr
    assert "Traceback" not in done.stderr
    report = last_json(done.stdout)
    assert report["verdict"] == "different", report
    assert report["first_difference"].startswith("model differs")
    model = next(step for step in report["steps"] if step["step"] == "model")
    assert model["status"] == "different"
    assert model["registered_artifact"] == "models:/synthetic_binary_dev/1"
    assert model["refused"]  # why the registered files could not be compared, in words
    assert "pwned" not in done.stdout + done.stderr


def test_an_untouched_artifact_is_named_as_the_one_compared(
    synthetic_project, synthetic_models, tmp_path
):
    uri, _ = tampered_copy(synthetic_models, "binary", tmp_path)
    done = reproduce(synthetic_project, uri, "binary")
    assert done.returncode == 0, done.stderr
    report = last_json(done.stdout)
    model = next(step for step in report["steps"] if step["step"] == "model")
    assert model["status"] == "identical"
    assert model["registered_artifact"] == "models:/synthetic_binary_dev/1"
    assert "refused" not in model
    assert model["registered_files"].startswith("sha256 of MLmodel and the model file match")
    assert "models:/synthetic_binary_dev/1" in "\n".join(
        line for line in done.stdout.splitlines() if line.lstrip().startswith("model")
    )


def other_model_in_place(files: Path) -> None:
    """A valid skops file of trusted types, but another model: the registered one given one
    more fitted attribute and written again (what a loader's allow-list alone lets through)."""
    import skops.io

    flavor = yaml.safe_load((files / "MLmodel").read_text())["flavors"]["sklearn"]
    path = files / flavor["pickled_model"]
    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    model.replaced_ = True
    skops.io.dump(model, path)


def forget_the_record(uri: str) -> None:
    """The version and its run without the files' sha256 (a model logged before it was kept)."""
    client = MlflowClient(tracking_uri=uri)
    version = client.get_model_version("synthetic_binary_dev", "1")
    client.delete_model_version_tag("synthetic_binary_dev", "1", "model.files_sha256")
    client.delete_tag(version.run_id, "model.files_sha256")


def test_every_loader_refuses_files_other_than_the_recorded_ones(
    synthetic_project, synthetic_models, scoring_batches, tmp_path
):
    uri, files = tampered_copy(synthetic_models, "binary", tmp_path)
    other_model_in_place(files)
    output = tmp_path / "scored.parquet"
    done = run_cli(
        "predict", "--env", "dev", "--problem", "synthetic_binary", "--model-uri",
        "models:/synthetic_binary_dev/1", "--input", str(scoring_batches["binary"]["batch"]),
        "--output", str(output), cwd=synthetic_project, tracking_uri=uri,
    )  # fmt: skip
    assert done.returncode == 8, done.stderr
    assert "Traceback" not in done.stderr
    assert "not the ones its training run uploaded" in done.stderr
    assert "model.skops differ" in done.stderr or "differ from the sha256" in done.stderr
    assert not output.exists()
    done = reproduce(synthetic_project, uri, "binary")
    assert done.returncode == 6, done.stderr
    model = next(step for step in last_json(done.stdout)["steps"] if step["step"] == "model")
    assert model["status"] == "different"
    assert "not the ones its training run uploaded" in model["refused"]


def test_a_model_without_a_record_loads_and_reproduce_says_its_files_were_not_checked(
    synthetic_project, synthetic_models, tmp_path
):
    uri, _ = tampered_copy(synthetic_models, "binary", tmp_path)
    forget_the_record(uri)
    done = reproduce(synthetic_project, uri, "binary")
    assert done.returncode == 0, done.stderr
    model = next(step for step in last_json(done.stdout)["steps"] if step["step"] == "model")
    assert model["status"] == "identical"
    assert model["registered_files"].startswith("no sha256 recorded")
