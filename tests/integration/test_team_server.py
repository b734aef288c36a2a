"""The team's tracking server: `mlflow server` on PostgreSQL with basic auth, over HTTP.

One server for the module, started by deploy/tracking-server/serve.sh (the recipe's launcher,
which docker-compose.yml runs): a real PostgreSQL holding the backend store and the auth app's
users, proxied artifacts, job execution off, `--app-name basic-auth` (`--workers 1` here). A CI
identity runs CI's own make targets against it (staging training, reproduce); an anonymous
client and another user are refused; nothing the CI identity's credentials could leak into
holds them; and after a restart on the same database and artifact root every run, version,
alias, tag and artifact is still there. The project is a clean copy holding a synthetic binary
problem (tests/synthetic.py), which every make target works on through `PROBLEM`, as CI's
matrix sets it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_project.summary import read_result
from tests.ci.workflows import run_make
from tests.conftest import ROOT, commit_all, git, last_json, make_project_copy, run_cli
from tests.integration.tracking_server import start_tracking_server
from tests.synthetic import write_problem

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVE = ROOT / "deploy" / "tracking-server" / "serve.sh"
PROBLEM = "synthetic_binary"
MODEL = "synthetic_binary_staging"
CI_USER = "ci-staging"
READER = "analyst"


@pytest.fixture(scope="module")
def team(postgres, tmp_path_factory):
    """The server, its settings and the identities; `team["server"]` is the live one."""
    folder = tmp_path_factory.mktemp("team-server")
    db_password = secrets.token_urlsafe(12)
    backend = postgres.create_database("mlflow", owner="mlflow", password=db_password)
    users = postgres.create_database("mlflow_auth", owner="mlflow", password=db_password)
    admin_password = secrets.token_urlsafe(16)
    settings = {  # the recipe's own launcher, configured as docker-compose.yml does
        "directory": folder / "server",
        "backend_store_uri": backend,
        "launcher": SERVE,
        "env": {
            "MLFLOW_AUTH_DATABASE_URI": users,
            "MLFLOW_AUTH_CONFIG_PATH": str(folder / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
            "MLFLOW_AUTH_CACHE_TTL_SECONDS": "60",
        },
    }
    state = {
        "settings": settings,
        "server": start_tracking_server(**settings),
        "admin": ("admin", admin_password),
        "ci": (CI_USER, "ci-" + secrets.token_urlsafe(18)),
        "reader": (READER, secrets.token_urlsafe(18)),
        "postgres": postgres,
    }
    try:
        for username, password in (state["ci"], state["reader"]):
            created = requests.post(
                f"{state['server'].url}/api/2.0/mlflow/users/create",
                json={"username": username, "password": password},
                auth=state["admin"],
                timeout=30,
            )
            assert created.status_code == 200, created.text
        yield state
    finally:
        state["server"].stop()


def as_user(monkeypatch, team, who: str | None) -> MlflowClient:
    """An MlflowClient of the live server with `who`'s credentials (None: anonymous)."""
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    if who:
        username, password = team[who]
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team["server"].url)  # for models:/ downloads
    return MlflowClient(tracking_uri=team["server"].url, registry_uri=team["server"].url)


@pytest.fixture(scope="module")
def ci(team, tmp_path_factory):
    """CI's staging steps as the CI identity, then a person's registry commands:

    `make ci-staging` (v1: gate passed, champion), `make ci-reproduce`, a crippled training
    (v2: refused by the gate), a forced `promote` of v2, `make ci-show`, and a `rollback`.
    The checkout's remote URL carries the CI password too, as a token-in-URL checkout would.
    """
    project = make_project_copy(tmp_path_factory.mktemp("team-ci") / "project")
    write_problem(project, "binary")
    commit_all(project, "a synthetic problem")
    username, password = team["ci"]
    git(project, "remote", "add", "origin", f"https://{username}:{password}@git.invalid/t/r.git")
    credentials = {
        "MLFLOW_TRACKING_URI": team["server"].url,
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": password,
        "PROBLEM": PROBLEM,  # read by every make target
    }

    def cli(*args):
        return run_cli(
            *args, "--problem", PROBLEM, cwd=project, tracking_uri=team["server"].url,
            env=credentials,
        )  # fmt: skip

    trained = run_make("ci-staging", cwd=project, env=credentials)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    steps = {"reproduced": run_make("ci-reproduce", "ENV=staging", cwd=project, env=credentials)}
    crippled = project / "outputs" / "crippled"
    steps["refusal"] = run_make(
        "ci-staging",
        f"OUT={crippled}",
        "TRAIN_ARGS=--set params.max_iter=1 --set params.max_leaf_nodes=2",
        cwd=project,
        env=credentials,
    )
    refused = read_result(crippled / f"{PROBLEM}-staging.out")
    steps["after_refusal"] = cli("show", "--env", "staging", "--json")
    steps["promoted"] = cli(
        "promote", "--env", "staging", "--version", refused["model_version"],
        "--reason", "forced by the team-server test", "--json",
    )  # fmt: skip
    steps["shown"] = run_make("ci-show", "ENV=staging", cwd=project, env=credentials)
    steps["rolled_back"] = cli("rollback", "--env", "staging", "--reason", "back to the gate's")
    steps["final"] = cli("show", "--env", "staging", "--json")
    return {
        "project": project,
        "result": read_result(project / "outputs" / f"{PROBLEM}-staging.out"),
        "refused": refused,
        **steps,
    }


def test_ci_trains_and_registers_on_the_postgresql_server(ci, team, monkeypatch):
    result = ci["result"]
    assert result["tracking_uri"] == team["server"].url
    client = as_user(monkeypatch, team, "ci")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # proxied by the server
    version = client.get_model_version(MODEL, result["model_version"])
    assert version.run_id == run.info.run_id
    assert version.tags["git.commit"] == git(ci["project"], "rev-parse", "HEAD")
    # The records are in PostgreSQL, the files under the server's artifact root, none local.
    postgres = team["postgres"]
    assert (
        postgres.psql(f"SELECT status FROM runs WHERE run_uuid = '{run.info.run_id}'", "mlflow")
        == "FINISHED"
    )
    assert (
        postgres.psql(
            f"SELECT run_id FROM model_versions WHERE name = '{MODEL}' "
            f"AND version = {result['model_version']}",
            "mlflow",
        )
        == run.info.run_id
    )
    assert list(team["server"].artifacts_dir.rglob("MLmodel"))
    assert not (ci["project"] / "mlflow.db").exists()
    assert not any((ci["project"] / "outputs" / "ci-store").iterdir())


def test_ci_reproduces_the_version_over_http(ci, team, monkeypatch):
    reproduced = ci["reproduced"]
    assert reproduced.returncode == 0, reproduced.stdout[-3000:] + reproduced.stderr[-3000:]
    assert ": identical." in reproduced.stdout
    client = as_user(monkeypatch, team, "ci")
    version = client.get_model_version(MODEL, ci["result"]["model_version"])
    run = client.get_run(version.tags["reproduction.run_id"])
    assert run.data.tags["reproduction.verdict"] == "identical"
    assert run.data.tags["reproduction.of_run_id"] == ci["result"]["run_id"]


def test_the_gate_promotion_and_rollback_run_over_http(ci, team, monkeypatch):
    first, second = ci["result"]["model_version"], ci["refused"]["model_version"]
    assert ci["result"]["gate"]["status"] == "passed"
    assert ci["refused"]["gate"]["status"] == "failed"  # still registered and tagged
    assert ci["refusal"].returncode != 0 and "Error 5" in ci["refusal"].stderr  # exit code 5
    assert str(ci["refused"]["gate"]["champion_version"]) == first
    for step in ("after_refusal", "promoted", "shown", "rolled_back", "final"):
        assert ci[step].returncode == 0, f"{step}: {ci[step].stderr[-3000:]}"
    assert last_json(ci["after_refusal"].stdout)["aliases"] == {"champion": first}
    shown = json.loads((ci["project"] / "outputs" / f"{PROBLEM}-staging-show.json").read_text())
    assert shown["aliases"] == {"champion": second}  # forced, after make ci-show
    final = last_json(ci["final"].stdout)
    assert final["aliases"] == {"champion": first}  # rolled back
    statuses = {item["version"]: item["validation_status"] for item in final["versions"]}
    assert statuses == {first: "passed", second: "failed"}
    moves = [(item["action"], item["alias"], item["to_version"]) for item in final["history"]]
    assert ("forced", "champion", second) in moves and ("rollback", "champion", first) in moves
    client = as_user(monkeypatch, team, "ci")
    assert client.get_registered_model(MODEL).aliases == {"champion": first}


def test_an_anonymous_client_can_neither_register_nor_read(ci, team, monkeypatch):
    client = as_user(monkeypatch, team, None)
    for attempt in (
        lambda: client.create_registered_model("anonymous_model"),
        lambda: client.create_model_version(MODEL, "models:/m-x", run_id=ci["result"]["run_id"]),
        lambda: client.get_model_version(MODEL, ci["result"]["model_version"]),
        lambda: client.search_experiments(),
    ):
        with pytest.raises(MlflowException) as refused:
            attempt()
        assert refused.value.get_http_status_code() == 401, refused.value
    response = requests.post(
        f"{team['server'].url}/api/2.0/mlflow/registered-models/create",
        json={"name": "anonymous_model"},
        timeout=30,
    )
    assert response.status_code == 401


def test_another_user_reads_the_ci_model_but_cannot_change_it(ci, team, monkeypatch):
    """default_permission = READ: a signed-in user who was granted nothing on the CI identity's
    model reads it, and cannot add a version, move an alias or tag it."""
    client = as_user(monkeypatch, team, "reader")
    version = client.get_model_version(MODEL, ci["result"]["model_version"])
    assert version.run_id == ci["result"]["run_id"]
    for attempt in (
        lambda: client.create_model_version(MODEL, version.source, run_id=version.run_id),
        lambda: client.set_registered_model_alias(MODEL, "champion", version.version),
        lambda: client.set_model_version_tag(MODEL, version.version, "approved", "yes"),
        lambda: client.log_param(version.run_id, "injected", "1"),
    ):
        with pytest.raises(MlflowException) as refused:
            attempt()
        assert refused.value.get_http_status_code() == 403, refused.value
    wrong = requests.get(
        f"{team['server'].url}/api/2.0/mlflow/experiments/search?max_results=1",
        auth=(READER, "not-the-password"),
        timeout=30,
    )
    assert wrong.status_code == 401


def secret_forms(username: str, password: str) -> list[bytes]:
    """The password, user:password, and the Basic header's base64 of it."""
    pair = f"{username}:{password}".encode()
    return [password.encode(), pair, base64.b64encode(pair)]


def downloaded_files(client: MlflowClient, run_ids, model_uris, destination: Path):
    """Every artifact of the runs and of the registered models, downloaded over HTTP."""
    import mlflow.artifacts

    for run_id in run_ids:
        client.download_artifacts(run_id, "", str(destination / "runs" / run_id))
    for index, uri in enumerate(model_uris):
        mlflow.artifacts.download_artifacts(uri, dst_path=str(destination / f"model-{index}"))
    return [path for path in destination.rglob("*") if path.is_file()]


def test_no_credential_is_logged_as_param_tag_or_artifact(ci, team, monkeypatch, tmp_path):
    client = as_user(monkeypatch, team, "ci")
    forms = secret_forms(*team["ci"])
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id])
    training = client.get_run(ci["result"]["run_id"])
    assert training.info.run_id in {run.info.run_id for run in runs}
    assert len(runs) >= 2  # the training and the reproduction
    texts = [str(experiment.tags)]
    for run in runs:
        texts += [str(run.data.params), str(run.data.tags), str(run.data.metrics), str(run.info)]
    registered = client.get_registered_model(MODEL)
    texts += [str(registered.tags), str(registered.aliases)]
    versions = client.search_model_versions(f"name = '{MODEL}'")
    for version in versions:
        texts += [str(version.tags), version.source or ""]
        logged = client.get_logged_model(version.source.removeprefix("models:/"))
        texts += [str(logged.tags), str(logged.params)]
    model_uris = [f"models:/{MODEL}/{version.version}" for version in versions]
    files = downloaded_files(client, [run.info.run_id for run in runs], model_uris, tmp_path)
    outputs = list((ci["project"] / "outputs").glob("*.*"))  # CI's own logs and summaries
    contents = [text.encode() for text in texts] + [path.read_bytes() for path in files + outputs]
    # The scan reads what it should: the run id is in the metadata and in the MLmodel files.
    assert any(ci["result"]["run_id"].encode() in content for content in contents[len(texts) :])
    assert any(path.name == "MLmodel" for path in files) and len(files) > 20
    leaks = [
        (index, form) for index, content in enumerate(contents) for form in forms if form in content
    ]
    assert leaks == []
    assert training.data.tags["git.remote_url"] == "https://git.invalid/t/r.git"


def snapshot(client: MlflowClient, destination: Path) -> dict:
    """What the server holds for the staging model: runs, versions, aliases, tags, files."""
    experiment = client.get_experiment_by_name(MODEL)
    runs = client.search_runs([experiment.experiment_id], order_by=["attribute.start_time"])
    registered = client.get_registered_model(MODEL)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    files = downloaded_files(
        client,
        [run.info.run_id for run in runs],
        [f"models:/{MODEL}/{version.version}" for version in versions],
        destination,
    )
    return {
        "experiment": (experiment.experiment_id, experiment.artifact_location),
        "runs": {
            run.info.run_id: (
                run.info.status,
                run.info.artifact_uri,
                run.data.params,
                run.data.metrics,
                {k: v for k, v in run.data.tags.items() if k != "mlflow.runName"},
            )
            for run in runs
        },
        "aliases": registered.aliases,
        "model_tags": registered.tags,
        "versions": {
            version.version: (version.run_id, version.source, version.status, version.tags)
            for version in versions
        },
        "files": {
            str(path.relative_to(destination)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in files
        },
    }


def test_the_launcher_keeps_the_server_lean_and_its_config_private(ci, team):
    """serve.sh execs `mlflow server`: the launcher and one uvicorn worker, no job runner."""
    assert 1 <= len(team["server"].processes()) <= 2
    config = Path(team["settings"]["env"]["MLFLOW_AUTH_CONFIG_PATH"])
    assert config.stat().st_mode & 0o077 == 0  # it holds the users database's password
    assert "default_permission = READ" in config.read_text()


def test_nothing_is_lost_when_the_server_restarts(ci, team, monkeypatch, tmp_path):
    client = as_user(monkeypatch, team, "ci")
    before = snapshot(client, tmp_path / "before")
    assert len(before["runs"]) >= 2 and before["versions"] and len(before["files"]) > 20

    old = team["server"]
    old.stop()
    assert old.processes() == [] and not old.is_healthy()
    team["server"] = start_tracking_server(**team["settings"])  # same database, same files
    assert team["server"].port != old.port or team["server"].pid != old.pid

    client = as_user(monkeypatch, team, "ci")
    after = snapshot(client, tmp_path / "after")
    assert after == before
    # The users live in PostgreSQL too: the CI identity still signs in, anonymous still cannot.
    anonymous = requests.get(f"{team['server'].url}/api/2.0/mlflow/experiments/search", timeout=30)
    assert anonymous.status_code == 401
