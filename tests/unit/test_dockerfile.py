"""The Dockerfile: it lints cleanly (hadolint) and its build steps install from the lock."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if not found:
        pytest.fail("hadolint is missing: pip install -c requirements.lock -e '.[dev]'")
    return found


def test_dockerfile_passes_hadolint():
    done = subprocess.run(
        [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_hadolint_would_catch_an_unpinned_install(tmp_path):
    """The lint test can fail: an unpinned apt package is reported."""
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        DOCKERFILE.read_text(encoding="utf-8").replace("git=1:2.39.*", "git"), encoding="utf-8"
    )
    done = subprocess.run([hadolint(), str(broken)], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "DL3008" in done.stdout


def test_image_is_pinned_and_installs_from_the_lock():
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim-bookworm AS runtime$", text, re.MULTILINE)
    assert "Python 3.11" in (ROOT / "requirements.lock").read_text(encoding="utf-8")
    installs = re.findall(r"pip install [^\n]*", text)
    assert len(installs) == 2
    assert all("-c requirements.lock" in line for line in installs)
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["python", "-m", "ml_project"]' in text


def test_the_build_installs_exactly_the_runtime_dependencies():
    """Run the Dockerfile's own extraction step: it lists pyproject's runtime dependencies."""
    code = re.search(r'RUN python -c "(.+?)" > /tmp/runtime\.txt', DOCKERFILE.read_text()).group(1)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    with open(ROOT / "pyproject.toml", "rb") as handle:
        expected = tomllib.load(handle)["project"]["dependencies"]
    assert done.stdout.splitlines() == expected
    assert any(line.startswith("mlflow==") for line in expected)


def test_dockerignore_keeps_stores_and_history_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for entry in (".git", ".venv", "mlflow.db", "mlartifacts/", "mlruns/"):
        assert entry in ignored


def test_serving_stage_is_non_root_with_a_healthcheck_on_the_champion():
    text = DOCKERFILE.read_text(encoding="utf-8")
    stage = text.split("FROM runtime AS serve", 1)[1].split("\nFROM ", 1)[0]
    assert re.search(r"^USER 10001:10001$", stage, re.MULTILINE)
    assert "HEALTHCHECK --interval" in stage and "/ping" in stage
    assert "ENV MODEL_URI=$MODEL_URI" in stage  # the build argument below
    # the project's loader (its allow-list), not `mlflow models serve` (the artifact's)
    assert "ml-project serve" in stage and "mlflow models serve" not in stage.split("ENTRYPOINT")[1]
    assert "EXPOSE 8080" in stage


def test_the_served_model_is_a_build_argument_defaulting_to_the_default_problem():
    """A fork builds `--build-arg MODEL_URI=models:/<name>_prod@champion`; the default is the
    prod champion of the project's default problem (its `name:` setting)."""
    from ml_project.settings import load_settings

    text = DOCKERFILE.read_text(encoding="utf-8")
    stage = text.split("FROM runtime AS serve", 1)[1].split("\nFROM ", 1)[0]
    [default] = re.findall(r"^ARG MODEL_URI=(\S+)$", stage, re.MULTILINE)
    expected = f"models:/{load_settings('prod', root=ROOT).model_name}@champion"
    assert default == expected, f"Dockerfile: set `ARG MODEL_URI={expected}` (the default problem)"
    assert re.search(r"^ENV MODEL_URI=\$MODEL_URI", stage, re.MULTILINE)
    assert "ARG MODEL_URI" not in text.split("FROM runtime AS serve", 1)[0]  # the serve stage's
    assert "--build-arg MODEL_URI=models:/<name>_prod@champion" in text  # how to build it
