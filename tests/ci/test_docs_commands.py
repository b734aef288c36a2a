"""Every command the README and docs/ show in a ```bash block still parses: each `make` line
dry-runs (`make -n`), each `ml-project` and `mlflow` line names a subcommand and options that
exist. A renamed target, command or flag fails here instead of in a newcomer's terminal."""

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ml_project.cli import cli as ml_project_cli
from tests.ci.test_docs_check import docs_check  # make docs-check's parser: the blocks it runs

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE, tokens, logical_lines = docs_check.FENCE, docs_check.tokens, docs_check.logical_lines
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = {"&&", "||", "|", ";", "&"}


def shown_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every simple command in the pages' bash blocks, with the variable
    assignments in front of it dropped."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text(encoding="utf-8")):
            for line in logical_lines(block):
                command: list[str] = []
                for token in [*tokens(line), ";"]:
                    if token not in SEPARATORS:
                        command.append(token)
                        continue
                    while command and ASSIGNMENT.match(command[0]):
                        command.pop(0)
                    if command:
                        found.append((f"{page.relative_to(ROOT)}: {line.strip()[:70]}", command))
                    command = []
    return found


def program(argv: list[str]) -> tuple[str, list[str]]:
    """The program a command runs and its arguments; `spark-submit ... ml_project/__main__.py
    ARGS` runs ml-project."""
    name = Path(argv[0]).name
    if name == "spark-submit":
        main = [i for i, arg in enumerate(argv) if arg.endswith("ml_project/__main__.py")]
        return ("ml-project", argv[main[0] + 1 :]) if main else (name, argv[1:])
    return name, argv[1:]


COMMANDS = shown_commands()
MAKE = [
    (where, args) for where, argv in COMMANDS for name, args in [program(argv)] if name == "make"
]
CLICK = [
    (where, name, args)
    for where, argv in COMMANDS
    for name, args in [program(argv)]
    if name in ("ml-project", "mlflow")
]


def test_the_pages_show_commands_of_both_kinds():
    assert len(MAKE) >= 5 and len(CLICK) >= 20


@pytest.mark.parametrize(("where", "args"), MAKE, ids=[where for where, _ in MAKE])
def test_each_make_command_dry_runs(where, args):
    tools = f"BIN={Path(sys.executable).parent}"
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), *args, "SKIP_INSTALL=1", tools],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"{where}: {done.stderr}"


def group_of(name: str) -> click.Group:
    if name == "ml-project":
        return ml_project_cli
    from mlflow.cli import cli as mlflow_cli

    return mlflow_cli


@pytest.mark.parametrize(("where", "name", "args"), CLICK, ids=[where for where, *_ in CLICK])
def test_each_cli_command_names_a_subcommand_and_options_that_exist(where, name, args):
    command: click.Command = group_of(name)
    path = [name]
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{where}: `{' '.join(path)}` has no subcommand {args[0]!r}"
        command, path, args = sub, [*path, args[0]], args[1:]
    assert not isinstance(command, click.Group), f"{where}: `{' '.join(path)}` needs a subcommand"
    known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
    known |= {"--help", "-h"}
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag.startswith("-") and flag != "-" and not re.fullmatch(r"-\d.*", flag):
            assert flag in known, f"{where}: `{' '.join(path)}` has no option {flag}"
