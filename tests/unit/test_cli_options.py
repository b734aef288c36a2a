"""Option values click would accept but the command cannot use: refused as usage errors."""

import pytest
from click.testing import CliRunner

from ml_project.cli import cli
from ml_project.settings import load_settings, project_root


@pytest.mark.parametrize(
    ("value", "says"),
    [("inf", "'inf' is not a finite number"), ("nan", "'nan' is not a finite number"),
     ("-1", "-1.0 is not in the range x>=0")],
)  # fmt: skip
def test_reproduce_refuses_a_tolerance_that_is_not_a_finite_non_negative_number(value, says):
    """`inf` would call any difference "within tolerance"; nan passes every range check."""
    done = CliRunner().invoke(cli, ["reproduce", "--env", "dev", "--version", "1",
                                    "--tolerance", value])  # fmt: skip
    assert done.exit_code == 2
    assert f"Invalid value for '--tolerance': {says}" in done.output


def test_settings_options_reach_the_settings(monkeypatch, tmp_path):
    """--seed, --set and --table are applied by resolve_settings, over the env's overlay."""
    seen = []
    monkeypatch.setattr("ml_project.pipeline.run_validation", lambda s, root: seen.append(s) or [])
    name = next(iter(load_settings("dev", root=project_root()).data.tables))  # any problem's
    table = tmp_path / f"{name}.csv"
    options = ["--seed", "7", "--set", "params.max_iter=50", "--table", f"{name}={table}"]
    done = CliRunner().invoke(cli, ["validate-data", "--env", "dev", *options])
    assert done.exit_code == 0, done.output
    (settings,) = seen
    assert (settings.seed, settings.params["max_iter"]) == (7, 50)
    assert settings.data.tables[name] == str(table)
