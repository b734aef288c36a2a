"""A run's life: a failure inside `training_run` ends the run FAILED and reaches the user as
raised, with its own cause chain; `serving.plan` serves a model folder as given."""

import shutil
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from ml_project import run_life, serving
from ml_project.errors import RegistryError
from tests.synthetic import synthetic_settings, write_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path):
    shutil.copytree(ROOT / "environments", tmp_path / "environments")
    write_problem(tmp_path, "binary", rows=100)
    return tmp_path


def test_a_project_error_inside_a_run_keeps_its_cause_and_the_run_ends_failed(project):
    uri = f"sqlite:///{project / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # conftest restores it
    client = MlflowClient(uri)
    experiment = client.create_experiment("life", artifact_location=str(project / "artifacts"))
    settings = synthetic_settings(project)
    cause = OSError("the disk is full")
    with (
        pytest.raises(RegistryError) as caught,
        run_life.training_run(
            client, settings, experiment_id=experiment, run_name="r", tags={}, commit="abc"
        ) as life,
    ):
        raise RegistryError("the registry refused the version") from cause
    assert caught.value.__cause__ is cause  # never the error itself
    run = client.get_run(life.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[run_life.FAILURE].startswith("training did not finish: RegistryError")
    assert mlflow.active_run() is None
    assert (project / "artifacts" / life.run_id / "artifacts" / "failure").is_dir()


def test_a_model_folder_is_served_as_given_with_the_envs_problem(project):
    settings = synthetic_settings(project)
    served = serving.plan(settings, root=project, model_uri="/srv/models/churn", client=None)
    assert (served.uri, served.problem) == ("/srv/models/churn", settings.problem)
    assert served.trusted
