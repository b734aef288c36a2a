"""Every exit code the CLI can end with is in `--help` and in the table of docs/exit-codes.md."""

import re
from pathlib import Path

from ml_project import errors
from ml_project.cli import EXIT_CODES_HELP

ROOT = Path(__file__).resolve().parents[2]


def project_error_codes() -> set[int]:
    found = set()
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, errors.ProjectError):
            found.add(value.exit_code)
    return found


def test_every_error_class_code_is_in_the_help_and_the_readme():
    codes = project_error_codes() | {0, 2, 129, 130, 143}  # ok, usage errors, signals
    assert codes >= {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
    in_help = {int(n) for n in re.findall(r"\b(\d+)(?=[ /])", EXIT_CODES_HELP)}
    readme = (ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([\d, ]+) \|", readme, re.MULTILINE)
    in_readme = {int(n) for row in rows for n in row.split(",")}
    assert codes - in_help == set(), f"missing from EXIT_CODES_HELP: {codes - in_help}"
    assert codes - in_readme == set(), f"missing from docs/exit-codes.md: {codes - in_readme}"
