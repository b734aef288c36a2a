import subprocess
import tomllib
from pathlib import Path

import pytest

from ml_project import lineage


def repo_with_a_commit(path):
    """A git repository at `path` holding one commit of code.py, on branch main."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    for key, value in (("user.email", "t@example.invalid"), ("user.name", "t")):
        subprocess.run(["git", "-C", str(path), "config", key, value], check=True)
    (path / "code.py").write_text("x = 1\n")
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-q", "-m", "one"], check=True)
    return path


def test_clean_checkout(tmp_path):
    repo = repo_with_a_commit(tmp_path / "repo")
    subprocess.run(["git", "-C", str(repo), "tag", "v1.0.0"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "remote", "add", "origin", "https://example.invalid/r.git"],
        check=True,
    )
    info = lineage.git_info(repo, environ={})
    assert len(info.commit) == 40 and info.branch == "main" and info.tag == "v1.0.0"
    assert info.remote_url == "https://example.invalid/r.git"
    assert info.dirty is False and info.source == "git"
    assert info.as_tags()["git.dirty"] == "false"


@pytest.mark.parametrize("change", ["modify", "untracked"])
def test_dirty_checkout(tmp_path, change):
    repo = repo_with_a_commit(tmp_path / "repo")
    target = repo / ("code.py" if change == "modify" else "new.py")
    target.write_text("x = 2\n")
    info = lineage.git_info(repo, environ={})
    assert info.dirty is True and info.changed == (target.name,)  # named in the refusal
    assert "git.changed" not in info.as_tags()


def test_without_git_falls_back_to_github_variables(tmp_path):
    environ = {
        "GITHUB_SHA": "a" * 40,
        "GITHUB_REF_TYPE": "tag",
        "GITHUB_REF_NAME": "v2.0.0",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "me/fork",
    }
    info = lineage.git_info(tmp_path, environ=environ)
    assert (info.commit, info.tag, info.branch) == ("a" * 40, "v2.0.0", "")
    assert info.remote_url == "https://github.com/me/fork"
    assert info.source == "github-env" and info.dirty is False


def test_without_git_or_ci_the_code_is_unknown_and_counts_as_dirty(tmp_path):
    info = lineage.git_info(tmp_path, environ={})
    assert info.source == "none" and info.commit == "" and info.dirty is True


def test_lock_pins_feed_model_requirements(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# comment\nscikit_learn==1.9.1\nnumpy==2.0.0 ; python_version>'3'\n")
    assert lineage.read_lock(lock) == {"scikit-learn": "1.9.1", "numpy": "2.0.0"}
    requirements = lineage.model_requirements(lock)
    assert "scikit-learn==1.9.1" in requirements and "numpy==2.0.0" in requirements
    assert all("==" in line for line in requirements)


def test_environment_info_names_python_os_cpu_and_the_fits_threads():
    info = lineage.environment_info()
    assert set(info) == {"python", "os", "machine", "openmp_threads"} and all(info.values())
    assert int(info["openmp_threads"]) >= 1  # what a fit in this process would use


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://ci:s3cret@git.example.invalid/t/r.git", "https://git.example.invalid/t/r.git"),
        ("https://x-access-token:ghs_abc@github.com/o/r", "https://github.com/o/r"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git"),
        ("ssh://git@host:2222/o/r.git", "ssh://host:2222/o/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/repos/r.git", "/srv/repos/r.git"),
        ("", ""),
        (None, ""),
    ],
)
def test_remote_urls_lose_their_credentials(url, expected):
    assert lineage.without_credentials(url) == expected


def test_a_token_in_the_remote_url_is_not_recorded(tmp_path):
    repo = repo_with_a_commit(tmp_path / "repo")
    url = "https://ci:tok3n@git.example.invalid/r.git"
    subprocess.run(["git", "-C", str(repo), "remote", "add", "origin", url], check=True)
    info = lineage.git_info(repo, environ={})
    assert info.remote_url == "https://git.example.invalid/r.git"
    assert "tok3n" not in str(info.as_tags())


def test_the_runtime_closure_holds_what_the_project_needs_but_not_its_extras():
    own = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    assert lineage.project_distribution() == own  # whatever the project was named
    needed = lineage.runtime_closure()
    assert needed is not None
    assert {own, "mlflow", "scikit-learn", "numpy", "great-expectations"} <= needed
    assert not {"pytest", "ruff", "pyspark", "py4j"} & needed  # the dev and spark extras
    assert lineage.runtime_closure("no-such-distribution") is None
