"""Option values click would accept but the command cannot use: refused as usage errors."""

import pytest
from click.testing import CliRunner

from ml_project.cli import cli


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
