"""`make check-workflows` validates .github/ against GitHub's schemas, offline, and can fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ci.workflows import ROOT, run_make


def check_workflows(project: Path):
    return run_make("check-workflows", cwd=project, timeout=120)


@pytest.fixture
def copy(tmp_path) -> Path:
    """The Makefile and .github/ of the project, to break on purpose."""
    shutil.copy2(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    return tmp_path


def test_the_workflows_and_dependabot_config_pass(copy):
    done = check_workflows(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("ok -- validation done") == 3


def replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "file, old, new, expected",
    [
        # a misspelt job key: GitHub's workflow schema forbids unknown keys
        (
            "workflows/ci.yml",
            "    timeout-minutes: 10",
            "    timeout-minute: 10",
            "'timeout-minute' was unexpected",
        ),
        # a job without timeout-minutes: the timeout schema requires one on every job
        (
            "workflows/release.yml",
            "    timeout-minutes: 90\n",
            "",
            "'timeout-minutes' is a required",
        ),
        # a dependabot ecosystem GitHub does not know
        ("dependabot.yml", "github-actions", "github_actions", "github_actions"),
    ],
    ids=["misspelt-job-key", "missing-timeout", "dependabot-ecosystem"],
)
def test_a_broken_file_is_rejected(copy, file, old, new, expected):
    replace_once(copy / ".github" / file, old, new)
    done = check_workflows(copy)
    assert done.returncode == 2  # make's own code
    assert expected in done.stdout + done.stderr
