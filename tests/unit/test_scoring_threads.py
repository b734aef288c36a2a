"""Scoring commands run their model on one OpenMP thread unless the user's environment says
otherwise (a served row, or a batch beside other work, no longer fights for every core)."""

from ml_project import cli
from tests.conftest import imported_by


def test_a_scoring_command_bounds_openmp_to_one_thread(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cli.bound_scoring_threads()
    assert cli.os.environ["OMP_NUM_THREADS"] == "1"


def test_the_users_own_setting_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    cli.bound_scoring_threads()
    assert cli.os.environ["OMP_NUM_THREADS"] == "4"


def test_the_cli_imports_no_openmp_library_before_a_command_runs():
    """OpenMP reads the variable once, when scikit-learn loads it: the CLI module must not
    import scikit-learn (nor MLflow or great-expectations, which `--help` never needs)."""
    assert imported_by("ml_project.cli", ("sklearn", "mlflow", "great_expectations", "skops")) == []
