"""deploy/tracking-server/: the compose file is valid and safe, the image lints and matches the
lock, and the launcher refuses to start half-configured. (No Docker engine here: the server
itself is started from serve.sh by tests/integration/test_team_server.py.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml_project.lineage import read_lock
from tests.unit.test_dockerfile import hadolint

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "deploy" / "tracking-server"
COMPOSE = RECIPE / "docker-compose.yml"
SECRET_REFERENCE = re.compile(r"\$\{[A-Z_]+:\?[^}]*\}")


def check_compose(path: Path) -> subprocess.CompletedProcess:
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert tool, "check-jsonschema is missing: pip install -c requirements.lock -e '.[dev]'"
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_matches_the_compose_spec():
    done = check_compose(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_check_can_fail(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("service_healthy", "healthy"))
    assert check_compose(broken).returncode != 0


def test_compose_runs_the_lean_postgres_backed_authenticated_server():
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"postgres", "mlflow"}
    postgres, mlflow = compose["services"]["postgres"], compose["services"]["mlflow"]
    assert re.fullmatch(r"postgres:\d+-bookworm", postgres["image"])  # a pinned major
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert mlflow["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert mlflow["build"] == "."
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql://mlflow:")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_AUTH_DATABASE_URI"].endswith("@postgres:5432/mlflow_auth")
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert int(env["MLFLOW_WORKERS"]) <= 4
    assert 0 < int(env["MLFLOW_AUTH_CACHE_TTL_SECONDS"]) <= 300  # short: revocation lags by it
    assert "/srv/mlflow/artifacts" in env["MLFLOW_ARTIFACTS_DESTINATION"]
    initdb = (RECIPE / "initdb").glob("*.sql")
    assert any("CREATE DATABASE mlflow_auth" in path.read_text() for path in initdb)
    assert all(port.startswith("127.0.0.1:") for port in mlflow["ports"])  # behind a proxy


def test_no_secret_is_written_in_the_compose_file():
    compose = yaml.safe_load(COMPOSE.read_text())
    for service in compose["services"].values():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|_URI$", key) and "postgresql://" not in str(value):
                assert SECRET_REFERENCE.fullmatch(str(value)), key
            if "postgresql://" in str(value):
                assert SECRET_REFERENCE.search(str(value)), key  # the password is a reference
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_server_image_lints_and_installs_the_locked_versions():
    dockerfile = RECIPE / "Dockerfile"
    done = subprocess.run(
        [hadolint(), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
    text = dockerfile.read_text()
    installed = dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][^\s]*)", text))
    lock = {
        name.lower(): version for name, version in read_lock(ROOT / "requirements.lock").items()
    }
    assert set(installed) == {"mlflow", "psycopg2-binary", "Flask-WTF"}
    for name, version in installed.items():
        assert lock[name.lower()] == version, name
    assert 'ENTRYPOINT ["/usr/local/bin/serve.sh"]' in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)


@pytest.mark.parametrize(
    "missing",
    [
        "MLFLOW_BACKEND_STORE_URI",
        "MLFLOW_AUTH_DATABASE_URI",
        "MLFLOW_ARTIFACTS_DESTINATION",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ],
)
def test_the_launcher_refuses_to_start_half_configured(tmp_path, missing):
    environ = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(tmp_path),
        "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:pw@127.0.0.1:9/mlflow",
        "MLFLOW_AUTH_DATABASE_URI": "postgresql://mlflow:pw@127.0.0.1:9/mlflow_auth",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
    }
    del environ[missing]
    done = subprocess.run(
        ["sh", str(RECIPE / "serve.sh")], env=environ, capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and missing in done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing started
