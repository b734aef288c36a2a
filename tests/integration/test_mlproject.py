"""`mlflow run` works through the MLproject shim and records the same lineage."""

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.projects._project_spec import load_project
from packaging.requirements import Requirement

from ml_project.cli import cli
from ml_project.lineage import read_lock

ROOT = Path(__file__).resolve().parents[2]


def test_conda_env_pins_exactly_the_lock():
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip_section = next(item["pip"] for item in conda["dependencies"] if isinstance(item, dict))
    conda_pins = dict(line.split("==", 1) for line in pip_section)
    lock = read_lock(ROOT / "requirements.lock")
    normalised = {
        name.lower().replace("_", "-").replace(".", "-"): v for name, v in conda_pins.items()
    }
    assert normalised == lock
    assert "python=3.11" in conda["dependencies"]


def test_lock_satisfies_pyproject_pins():
    lock = read_lock(ROOT / "requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for text in wanted:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-").replace(".", "-")
        assert name in lock, f"{name} is in pyproject.toml, not in requirements.lock"
        assert requirement.specifier.contains(lock[name]), f"{text}: locked {lock[name]}"
    assert lock["mlflow"] == "3.17.2"
    assert lock["scikit-learn"].startswith("1.9.")
    assert lock["great-expectations"].startswith("1.24.")


def shim_command(entry_point: str, **parameters: str) -> list[str]:
    """The command `mlflow run -e ENTRY_POINT -P ...` runs, as words."""
    project = load_project(str(ROOT))
    return shlex.split(project.get_entry_point(entry_point).compute_command(parameters, "/tmp"))


def problem_chosen(words: list[str]) -> str | None:
    """The --problem the CLI takes from `<python> -m ml_project ...` words (None: the default)."""
    start = words.index("-m")
    assert words[start + 1] == "ml_project"
    command, args = words[start + 2], words[start + 3 :]
    with (
        cli.make_context("ml-project", [command]) as parent,
        cli.commands[command].make_context(command, args, parent=parent) as context,
    ):
        return context.find_root().meta.get("ml_project.problem")


@pytest.mark.parametrize("entry_point", ["main", "train", "validate_data"])
def test_every_entry_point_takes_env_and_problem(entry_point):
    words = shim_command(entry_point, env="staging", problem="my_problem")
    assert words[words.index("--env") + 1] == "staging"
    assert problem_chosen(words) == "my_problem"
    # without -P problem=...: the project's default problem, as `ml-project` without --problem
    words = shim_command(entry_point, env="dev")
    assert words[-2:] == ["--problem", ""]
    assert problem_chosen(words) is None
    with pytest.raises(click.BadParameter):
        problem_chosen(shim_command(entry_point, env="qa"))


def with_default_problem(project: Path, problem: str, folder: Path) -> Path:
    """A committed copy of `project` whose default problem (environments/base.yaml) is
    `problem`: what `mlflow run` without `-P problem=` trains."""
    copy = folder / "project"
    shutil.copytree(project, copy, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    base = copy / "environments" / "base.yaml"
    lines = base.read_text().splitlines()
    base.write_text(
        "\n".join(f"problem: {problem}" if line.startswith("problem:") else line for line in lines)
        + "\n"
    )
    subprocess.run(["git", "commit", "-qam", "default problem"], cwd=copy, check=True)
    return copy


@pytest.mark.integration
@pytest.mark.parametrize("given", [True, False], ids=["problem given", "default problem"])
def test_mlflow_run_trains_with_lineage(synthetic_project, store_uri, tmp_path, request, given):
    """`.venv/bin/mlflow run` as the docs show it: the venv not activated, so `python` on PATH
    is not the project's; the shim runs the project's .venv/bin/python. Without `-P problem=`
    MLflow logs the entry point's `problem=''` first: the training keeps it (MLflow refuses to
    change a logged param) and trains the default problem."""
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    problem = "synthetic_binary"
    if not given:
        synthetic_project = with_default_problem(synthetic_project, problem, tmp_path)
    venv = synthetic_project / ".venv"  # git-ignored, as in a checkout after `make install`
    venv.mkdir()
    request.addfinalizer(lambda: shutil.rmtree(venv))
    for entry in Path(sys.prefix).iterdir():  # this venv, seen from the project's .venv
        (venv / entry.name).symlink_to(entry)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != mlflow_cli.parent]
    # From an empty folder: MLflow puts the artifacts of the experiment it creates in ./mlruns,
    # which must land here, never in the checkout.
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    done = subprocess.run(
        [
            str(mlflow_cli),
            "run",
            str(synthetic_project),
            "-e",
            "train",
            "-P",
            "env=dev",
            *(["-P", f"problem={problem}"] if given else []),
            "--env-manager",
            "local",
            "--experiment-name",
            f"{problem}_dev",
        ],
        cwd=workdir,
        env={
            **{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")},
            "MLFLOW_TRACKING_URI": store_uri,
            "PATH": os.pathsep.join(path),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name(f"{problem}_dev")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["git.dirty"] == "false"
    assert run.data.tags["mlflow.project.entryPoint"] == "train"
    assert run.data.tags["ml_project.problem"] == problem
    assert run.data.params["problem"] == (problem if given else "''")  # as `mlflow run` logs it
    assert run.data.params["task"] == "binary"  # the settings' own params are all there
    assert len(run.data.tags["data.digest"]) == 64
    version = client.get_model_version(f"{problem}_dev", "1")
    assert version.tags["git.commit"] == run.data.tags["git.commit"]
    assert not (synthetic_project / "mlruns").exists()
    assert (workdir / "mlruns").is_dir()  # where the run's artifacts went
