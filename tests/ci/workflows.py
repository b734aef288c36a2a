"""The CI definitions: read the GitHub workflows and the Makefile, run a target as CI does."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.preforked import preloaded_server

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
MAKEFILE = ROOT / "Makefile"
TARGET = re.compile(r"^([a-z][a-z0-9-]*):(?!=)(.*)$")
# Variables a caller's shell may hold that would change what a target does.
MAKE_INPUTS = (
    "ENV",
    "PROBLEM",
    "OUT",
    "CI_STORE",
    "TRAIN_ARGS",
    "BATCH",
    "BATCH_QUERY",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_OUTPUT",
)


def run_make(
    *args: str,
    cwd: Path,
    env: dict | None = None,
    timeout: int = 900,
    bin_dir: Path | None = None,
) -> subprocess.CompletedProcess:
    """`make ARGS` in `cwd` with this interpreter's tools (no install), running `cwd`'s code.

    `env` adds variables; a None value removes one (e.g. MLFLOW_TRACKING_URI, as in a fork).
    `bin_dir` replaces the folder of the tools (`ml-project`, ...); by default they are the
    venv's, with `ml-project` a fork of the worker's preloaded server (tests/preforked.py).
    """
    environ = {key: value for key, value in os.environ.items() if key not in MAKE_INPUTS}
    environ |= {"PYTHONPATH": str(cwd), "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    environ = {key: value for key, value in environ.items() if value is not None}
    bin_dir = bin_dir or preloaded_server().bin_dir()
    return subprocess.run(
        [shutil.which("make") or "make", "-C", str(cwd), *args, f"BIN={bin_dir}", "SKIP_INSTALL=1"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_workflow(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in workflow:  # YAML 1.1 reads the key `on` as the boolean true
        workflow["on"] = workflow.pop(True)
    return workflow


def workflow_names() -> list[str]:
    return sorted(path.name for path in WORKFLOWS.glob("*.yml"))


def steps(workflow: dict):
    """(job id, job, step) for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, job, step


def run_lines(run: str) -> list[str]:
    """The commands of a `run:` block: continuation lines joined, blanks and comments dropped."""
    text = run.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def command_words(line: str) -> list[str]:
    """The words of one command, without leading VAR=value assignments or a redirection."""
    words = shlex.split(line, comments=True)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    for index, word in enumerate(words):
        if word in (">", ">>", "|", "&&", ";"):
            return words[:index]
    return words


def make_targets_called(words: list[str]) -> list[str]:
    """The targets of a `make ...` command (options and VAR=value arguments left out)."""
    return [word for word in words[1:] if not word.startswith("-") and "=" not in word]


def makefile_targets() -> dict[str, str]:
    """Target name -> its `## ` help text ('' when it has none)."""
    targets = {}
    for line in MAKEFILE.read_text().splitlines():
        match = TARGET.match(line)
        if match:
            targets[match.group(1)] = match.group(2).partition("## ")[2].strip()
    return targets


def makefile_variable(name: str) -> str:
    match = re.search(rf"^{name}\s*\??=\s*(.*)$", MAKEFILE.read_text(), flags=re.MULTILINE)
    assert match, f"Makefile has no variable {name}"
    return match.group(1).strip()


def matrix_value(text: str, problem: str) -> str:
    """`text` with the workflows' `${{ matrix.problem || 'default' }}` and
    `${{ matrix.problem }}` expressions evaluated for one leg of the matrix."""
    text = re.sub(
        r"\$\{\{\s*matrix\.problem\s*\|\|\s*'([^']*)'\s*\}\}",
        lambda match: problem or match.group(1),
        text,
    )
    return re.sub(r"\$\{\{\s*matrix\.problem\s*\}\}", problem, text)


def dry_run(*args: str) -> list[str]:
    """The commands `make -n ARGS` would run in the project (nothing runs)."""
    make = shutil.which("make") or "make"
    done = subprocess.run(
        [make, "-n", "--no-print-directory", "-C", str(ROOT), *args, "SKIP_INSTALL=1"],
        env={key: value for key, value in os.environ.items() if key not in MAKE_INPUTS},
        capture_output=True,
        text=True,
        check=True,
    )
    return run_lines(done.stdout)


def makefile_recipes() -> dict[str, str]:
    """Target name -> its recipe text (tab-indented lines after it)."""
    recipes: dict[str, list[str]] = {}
    current = None
    for line in MAKEFILE.read_text().splitlines():
        match = TARGET.match(line)
        if match:
            current = match.group(1)
            recipes[current] = []
        elif line.startswith("\t") and current:
            recipes[current].append(line.strip())
        elif line.strip():
            current = None
    return {name: "\n".join(lines) for name, lines in recipes.items()}
