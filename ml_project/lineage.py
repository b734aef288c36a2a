"""Lineage: which code (git), which software (packages, Python, OS) made a model.

Git is read here, not left to MLflow, which only fills the commit for scripts inside the repo
and never the dirty flag. Without a .git folder (a CI tarball), GitHub's variables stand in.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The request/answer format between `reproduce` and a commit's own ml_project/rebuild.py,
# tagged on every training as `ml_project.rebuild_protocol`.
REBUILD_PROTOCOL = "2"
OPENMP_THREADS = "openmp_threads"  # env.openmp_threads: the threads a fit used
# Packages whose versions decide what a trained model is.
KEY_PACKAGES = (
    "mlflow",
    "scikit-learn",
    "pandas",
    "numpy",
    "scipy",
    "pyarrow",
    "skops",
    "great-expectations",
    "pydantic",
)


@dataclass(frozen=True)
class GitInfo:
    commit: str
    branch: str
    tag: str
    remote_url: str
    dirty: bool
    source: str  # "git", "github-env" or "none"
    changed: tuple[str, ...] = ()  # what makes the tree dirty (for messages; not a tag)

    def as_tags(self) -> dict[str, str]:
        return {
            f"git.{key}": str(value).lower() if isinstance(value, bool) else str(value)
            for key, value in asdict(self).items()
            if key != "changed"
        }


def git(root: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """`git -C root ARGS`, output captured; exit 127 when git is missing or timed out."""
    command = ["git", "-C", str(root), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 127, "", str(exc))


def _git(root: Path, *args: str) -> str | None:
    done = git(root, *args, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else None


def without_credentials(url: str | None) -> str:
    """`url` without a user or token in it (https://user:token@host/x -> https://host/x).

    CI checkouts may carry a token in the remote's URL; it must never become a tag.
    """
    if not url:
        return ""
    parsed = urlsplit(url)
    if not parsed.scheme or "@" not in parsed.netloc:
        return url  # a path, or scp-like git@host:org/repo (no secret in it)
    host = parsed.netloc.rsplit("@", 1)[1]
    return urlunsplit(parsed._replace(netloc=host))


def git_info(root: Path, environ: dict[str, str] | None = None) -> GitInfo:
    """The commit, branch, tag, remote and dirty flag of the checkout at `root`.

    A CI checkout is detached: the branch then comes from GitHub's variables (the pull
    request's head branch, else the pushed branch when HEAD is the pushed commit).
    """
    environ = dict(os.environ if environ is None else environ)
    top = _git(root, "rev-parse", "--show-toplevel")
    commit = _git(root, "rev-parse", "HEAD") if top else None
    if top and commit:
        status = _git(root, "status", "--porcelain", "--untracked-files=normal")
        branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD") or ""
        return GitInfo(
            commit=commit,
            branch=github_branch(environ, commit) if branch in ("", "HEAD") else branch,
            tag=release_tag(root, commit, environ),
            remote_url=without_credentials(_git(root, "config", "--get", "remote.origin.url")),
            dirty=status is None or status != "",
            source="git",
            changed=tuple(line.split(maxsplit=1)[-1] for line in (status or "").splitlines()),
        )
    if environ.get("GITHUB_SHA"):
        ref_type = environ.get("GITHUB_REF_TYPE", "")
        ref_name = environ.get("GITHUB_REF_NAME", "")
        server = environ.get("GITHUB_SERVER_URL", "")
        repo = environ.get("GITHUB_REPOSITORY", "")
        return GitInfo(
            commit=environ["GITHUB_SHA"],
            branch=github_branch(environ, environ["GITHUB_SHA"]),
            tag=ref_name if ref_type == "tag" else "",
            remote_url=f"{server}/{repo}" if server and repo else "",
            dirty=False,
            source="github-env",
        )
    return GitInfo(commit="", branch="", tag="", remote_url="", dirty=True, source="none")


def github_branch(environ: dict[str, str], commit: str) -> str:
    """The branch GitHub's variables name for `commit`: a pull request's head branch
    (GITHUB_HEAD_REF), else the pushed branch (GITHUB_REF_NAME) when `commit` is the pushed
    one; '' otherwise (a tag, a schedule's checkout of an older release)."""
    if environ.get("GITHUB_HEAD_REF"):
        return environ["GITHUB_HEAD_REF"]
    pushed = environ.get("GITHUB_REF_TYPE") == "branch" and environ.get("GITHUB_SHA") == commit
    return environ.get("GITHUB_REF_NAME", "") if pushed else ""


def release_tag(root: Path, commit: str, environ: dict[str, str]) -> str:
    """The tag naming `commit`: the pushed tag (GITHUB_REF_NAME) when HEAD is its commit, else
    among the tags at `commit` the highest version that is no pre-release (no '-': v1.2.0 over
    v1.2.0-rc1), else the highest; '' when no tag points at it."""
    if environ.get("GITHUB_REF_TYPE") == "tag" and environ.get("GITHUB_SHA") == commit:
        return environ.get("GITHUB_REF_NAME", "")
    listed = _git(root, "tag", "--points-at", commit, "--sort=-v:refname") or ""
    tags = listed.split()
    return next((tag for tag in tags if "-" not in tag), tags[0] if tags else "")


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str]:
    """Installed versions of `names` ('' when one is missing)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def environment_info() -> dict[str, str]:
    """Python, OS, CPU architecture, and the OpenMP threads scikit-learn fits with (a gradient
    boosting's sums depend on how many threads add them up: `reproduce` rebuilds with as many)."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    return {
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        OPENMP_THREADS: str(_openmp_effective_n_threads()),
    }


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip constraints file, keyed by normalised name."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[_normalise(name)] = version.split(";")[0].strip()
    return pins


def project_distribution() -> str | None:
    """The installed distribution that provides this package: the project's own name (a
    project made from the template renames it), None when it is not installed."""
    names = metadata.packages_distributions().get(__name__.split(".")[0])
    return names[0] if names else None


def runtime_closure(distribution: str | None = None) -> set[str] | None:
    """Normalised names of every installed package `distribution` (default: the project's
    own) needs without its extras (its dependencies, theirs, and so on), or None when it is
    not installed. What a rebuild needs; the extras (the test tools, Spark) are optional and
    not counted."""
    from packaging.requirements import Requirement  # mlflow's dependency, not the project's

    distribution = distribution or project_distribution()
    if distribution is None:
        return None
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    needed, queue = set(), [distribution]
    while queue:
        name = _normalise(queue.pop())
        if name in needed:
            continue
        needed.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue  # missing: the lock comparison names it
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                queue.append(requirement.name)
    return needed


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


# What a logged model needs at load time (its pip requirements), pinned from the lock.
MODEL_PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")


def model_requirements(lock_path: Path) -> list[str]:
    """Exact pins for the model's runtime: from the lock, else from what is installed."""
    pins = read_lock(lock_path) if lock_path.is_file() else {}
    installed = package_versions(MODEL_PACKAGES)
    return [f"{name}=={pins.get(name) or installed[name]}" for name in MODEL_PACKAGES]
