"""The workflows played event by event (tests/ci/github.py) in a fork of the project, against two
real `mlflow server`s standing for the staging and prod secrets (the repository's and the
`production` environment's); the stores are read after each event. Shared by
tests/ci/test_workflow_events.py (branches and pull requests) and
tests/ci/test_workflow_releases.py (release tags, the schedule, a manual retraining): two files,
each with its own fork and servers, so pytest-xdist runs them on two workers.

The fork has two small synthetic problems (the default and a second one in the matrix, in place
of the demos), and prod's sample set to staging's, so the trainings stay cheap. `uses:` steps
other than checkout and the artifacts are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mlflow import MlflowClient

from tests.ci.github import Event, Run, Runner, git
from tests.conftest import commit_all, make_project_copy
from tests.integration.tracking_server import start_tracking_server
from tests.preforked import preloaded_server
from tests.synthetic import write_problem

DEFAULT, SECOND = "synthetic_binary", "synthetic_regression"


@dataclass
class Played:
    """The events played so far: each one's runs and the stores after it."""

    origin: Path
    runner: Runner
    staging: str
    prod: str
    runs: dict[str, list[Run]] = field(default_factory=dict)
    stores: dict[str, dict[str, dict]] = field(default_factory=dict)  # event -> staging, prod
    commits: dict[str, str] = field(default_factory=dict)
    laptop: Path | None = None
    relocated: str = ""

    @property
    def addresses(self) -> list[str]:
        return [urlsplit(url).netloc for url in (self.staging, self.prod)]

    def event(self, label: str, workflows: list[str], **fields) -> None:
        """Play `workflows` for one event (the secrets as a repository with both has them)."""
        fields.setdefault("secrets", {"MLFLOW_TRACKING_URI": self.staging})
        fields.setdefault("environments", {"production": {"MLFLOW_TRACKING_URI": self.prod}})
        self.runs[label] = [self.runner.play(name, Event(**fields)) for name in workflows]
        self.stores[label] = {"staging": snapshot(self.staging), "prod": snapshot(self.prod)}


@contextmanager
def fork_with_servers(root: Path) -> Iterator[Played]:
    """A fork of the template in `root`/origin, a runner, and the two servers (stopped after)."""
    origin = make_project_copy(root / "origin")
    make_fork(origin)
    staging = start_tracking_server(root / "staging-server")
    prod = start_tracking_server(root / "prod-server")
    try:
        runner = Runner(origin, root / "runner", bin_dir=preloaded_server().bin_dir(), scratch=root)
        played = Played(origin, runner, staging.url, prod.url)
        played.commits["main"] = git(origin, "rev-parse", "main")
        yield played
    finally:
        staging.stop()
        prod.stop()


def make_fork(origin: Path) -> None:
    """The template as a team forks it: its own two problems in the matrices, prod sampled as
    staging is (the tests' budget), prod's row minimums scaled to the small tables."""
    write_problem(origin, "binary")
    write_problem(origin, "regression")
    base = origin / "environments" / "base.yaml"
    base.write_text(re.sub(r"^problem: \w+", f"problem: {DEFAULT}", base.read_text(), flags=re.M))
    for problem in (DEFAULT, SECOND):
        (origin / "problems" / problem / "environments" / "prod.yaml").write_text(
            "data:\n  sample_fraction: 0.5\n"
            "gate:\n  min_test_rows: 100\n"
            "monitor:\n  min_rows: 500\n"
        )
    for name in ("ci.yml", "release.yml"):
        path = origin / ".github" / "workflows" / name
        path.write_text(
            path.read_text().replace('problem: ["", storms]', f'problem: ["", {SECOND}]')
        )
    commit_all(origin, "our fork: our problems")


def snapshot(url: str) -> dict[str, dict]:
    """model -> {"aliases": {alias: version}, "versions": {version: tags}}; a version's tags
    hold its run's git.branch as `run:git.branch` (the branch is a run tag)."""
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    found = {}
    for model in client.search_registered_models():
        versions = {}
        for version in client.search_model_versions(f"name='{model.name}'"):
            branch = client.get_run(version.run_id).data.tags.get("git.branch", "")
            versions[version.version] = {**version.tags, "run:git.branch": branch}
        found[model.name] = {"aliases": dict(model.aliases), "versions": versions}
    return found


def commit_on(origin: Path, branch: str, path: str, text: str) -> str:
    git(origin, "checkout", "-q", "-B", branch)
    (origin / path).write_text(text)
    commit_all(origin, f"a change on {branch}")
    sha = git(origin, "rev-parse", "HEAD")
    git(origin, "checkout", "-q", "main")
    return sha


def pull_request(origin: Path, number: int, head: str, branch: str, repo: str) -> tuple[str, dict]:
    """GitHub's merge commit refs/pull/N/merge and the event's payload."""
    main = git(origin, "rev-parse", "main")
    merge = git(origin, "commit-tree", f"{head}^{{tree}}", "-p", main, "-p", head, "-m", "merge")
    git(origin, "update-ref", f"refs/pull/{number}/merge", merge)
    payload = {
        "number": number,
        "pull_request": {
            "number": number,
            "head": {"sha": head, "ref": branch, "repo": {"full_name": repo}},
            "base": {"ref": "main", "repo": {"full_name": "team/project"}},
        },
    }
    return merge, payload


def steps_of(job) -> dict[str, str]:
    return {step.name: step.outcome for step in job.steps}


def assert_succeeded(job) -> None:
    failed = [step for step in job.steps if step.outcome == "failure"]
    assert job.result == "success", "\n".join(f"{s.name}: {s.log[-3000:]}" for s in failed)


def versions(store: dict, model: str) -> dict[str, dict]:
    return store.get(model, {}).get("versions", {})


def uploaded_files(played: Played) -> list[Path]:
    """Every file the played runs uploaded as an artifact."""
    return [
        path
        for runs in played.runs.values()
        for run in runs
        for folder in run.artifacts.values()
        for path in folder.rglob("*")
        if path.is_file()
    ]


def assert_no_file_names_a_server(played: Played) -> None:
    for path in uploaded_files(played):
        content = path.read_bytes()
        for address in played.addresses:
            assert address.encode() not in content, path
