"""`ml-project init` end to end: a CSV the template has never seen (generated here, an integer id
key), `init`, a commit, then dev and staging training, the gate, `reproduce`, `predict` and
`mlflow models serve` with no hand edit, for each task kind; and the refusals, which write
nothing."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import commit_all, git, last_json, make_project_copy, run_cli
from tests.integration.test_serving import post, serving

pytestmark = pytest.mark.integration

KINDS = ("binary", "multiclass", "regression")
ROWS = 1500
SETTINGS = "environments/base.yaml"


def visits(kind: str, rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """A table of shop visits: an integer id, numbers (one with gaps), a category, free text,
    and a label of `kind` with signal in the features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "visit_id": rng.permutation(rows) * 11 + 500,
            "minutes": rng.gamma(2.0, 6.0, rows).round(1),
            "pages": rng.integers(1, 40, rows),
            "device": rng.choice(["phone", "desktop", "tablet"], rows, p=[0.5, 0.35, 0.15]),
            "referrer": [f"https://example.invalid/{i}" for i in rng.permutation(rows)],
        }
    )
    frame.loc[rng.random(rows) < 0.04, "minutes"] = np.nan
    effect = frame["device"].map({"phone": -0.6, "desktop": 0.8, "tablet": 0.0})
    signal = (frame["pages"] - 20) / 8 + effect + frame["minutes"].fillna(12).sub(12) / 10
    if kind == "binary":
        frame["bought"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-2 * signal)), "yes", "no")
    elif kind == "multiclass":
        noisy = signal + rng.normal(0, 0.4, rows)
        frame["bought"] = np.select([noisy < -0.6, noisy < 0.6], ["nothing", "one"], "several")
    else:
        frame["bought"] = (40 + 15 * signal + rng.normal(0, 3, rows)).round(2)
    return frame


def init(repo: Path, *args: str, uri: str):
    return run_cli("init", *args, cwd=repo, tracking_uri=uri)


def init_args(kind: str, *extra: str) -> tuple[str, ...]:
    return ("--table", f"{kind}_visits=data/{kind}_visits.csv", "--label", "bought",
            "--key", "visit_id", "--kind", kind, *extra)  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A clean project copy where `init` made a problem of each kind from a new CSV, committed."""
    root = make_project_copy(tmp_path_factory.mktemp("init") / "project")
    (root / "data").mkdir()
    uri = f"sqlite:///{tmp_path_factory.mktemp('init-store') / 'mlflow.db'}"
    for kind in KINDS:
        visits(kind).to_csv(root / "data" / f"{kind}_visits.csv", index=False)
        done = init(root, *init_args(kind), uri=uri)
        assert done.returncode == 0, done.stderr
        assert f"Default problem: {kind}_visits (`problem:` in {SETTINGS}" in done.stdout
        assert "ml-project train --env dev " in done.stdout
    commit_all(root, "init: a problem of each kind")
    return root


def test_init_writes_the_problem_and_makes_it_the_default(project):
    folder = project / "problems" / "binary_visits"
    problems = project / "problems"
    written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert written == ["__init__.py", "environments/base.yaml", "environments/dev.yaml",
                       "environments/prod.yaml", "environments/staging.yaml",
                       "expectations/binary_visits.yaml", "expectations/model_input.yaml",
                       "problem.py"]  # fmt: skip
    changed = git(project, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert all(path.startswith(("problems/", "data/")) for path in changed if path != SETTINGS)
    # one line of the project's settings changed: the default problem (the last one made)
    diff = git(project, "show", "--format=", "--unified=0", "HEAD", "--", SETTINGS).splitlines()
    removed, added = [line for line in diff if line.startswith(("+p", "-p"))]
    was = removed.split()[1]  # flights here; whatever a fork's default was
    assert removed.startswith("-problem: ") and (problems / was).is_dir()
    assert added == "+" + removed[1:].replace(f"problem: {was}", "problem: regression_visits")
    assert (problems / was / "problem.py").is_file()  # the previous default is still there
    base = (folder / "environments" / "base.yaml").read_text()
    assert "binary_visits: data/binary_visits.csv" in base
    assert "categorical: [device]" in base and "numeric: [minutes, pages]" in base
    assert "referrer: free text or identifier" in base
    suite = (folder / "expectations" / "binary_visits.yaml").read_text()
    assert "expect_column_values_to_be_unique" in suite and "# observed 2 values" in suite


@pytest.mark.parametrize("kind", KINDS)
def test_an_initialised_problem_goes_the_whole_path(kind, project, tmp_path):
    """As initialised, with no hand edit: dev and staging training pass the gate, `reproduce`
    rebuilds the staging champion identically, `predict` scores the table, and `mlflow models
    serve` answers over HTTP what `predict` wrote."""
    problem = f"{kind}_visits"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # the last problem made is the project's default: its commands need no --problem
    choose = () if kind == KINDS[-1] else ("--problem", problem)
    for env in ("dev", "staging"):
        done = run_cli("train", "--env", env, *choose, "--json", cwd=project, tracking_uri=uri)
        assert done.returncode == 0, done.stderr
        result = last_json(done.stdout)
        assert result["model_name"] == f"{problem}_{env}" and result["task"] == kind
        assert result["gate"]["status"] == "passed", result["gate"]
        assert result["rows"]["labelled"] == ROWS
    done = run_cli("reproduce", "--env", "staging", "--problem", problem, "--version", "1",
                   "--json", cwd=project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["verdict"] == "identical"
    scored = tmp_path / "scored.parquet"
    done = run_cli("predict", "--env", "staging", "--problem", problem,
                   "--input", f"data/{problem}.csv", "--output", str(scored),
                   cwd=project, tracking_uri=uri)  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = pd.read_parquet(scored)
    assert len(predictions) == ROWS and predictions["prediction"].notna().all()
    rows = pd.read_csv(project / "data" / f"{problem}.csv").head(50)
    body = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    log = tmp_path / "serve.log"
    with serving(uri, f"models:/{problem}_staging@champion", log, project=project) as url:
        status, reply = post(url, json.dumps(body).encode())
    assert status == 200, reply
    expected = predictions.set_index("visit_id").loc[rows["visit_id"], "prediction"].tolist()
    if kind == "regression":
        assert reply["predictions"] == pytest.approx(expected, rel=1e-9)
    else:
        assert reply["predictions"] == expected
    assert git(project, "status", "--porcelain") == ""


def bad_table(project: Path, name: str, frame: pd.DataFrame) -> str:
    """A table outside the project (nothing inside it changes), as --table NAME=PATH."""
    path = project.parent / f"{name}.csv"
    frame.to_csv(path, index=False)
    return f"{name}={path}"


REFUSALS = [
    ("missing file", lambda p: ("--table", "gone=data/gone.csv", "--label", "bought", "--key",
                                "visit_id", "--kind", "binary"), 3, "data/gone.csv: no such file"),
    ("unknown label", lambda p: ("--table", "binary_visits=data/binary_visits.csv", "--label",
                                 "nope", "--key", "visit_id", "--kind", "binary", "--name",
                                 "other"), 2, "--label nope: no such column in table binary_"),
    ("unknown key", lambda p: ("--table", bad_table(p, "keyless", visits("binary")), "--label",
                               "bought", "--key", "id", "--kind", "binary"), 2,
     "--key id: no such column"),
    ("one class", lambda p: ("--table", bad_table(p, "oneclass", visits("binary").assign(
        bought="yes")), "--label", "bought", "--key", "visit_id", "--kind", "binary"), 3,
     "every row holds the same value ('yes')"),
    ("duplicated key", lambda p: ("--table", bad_table(p, "dupes", visits("binary").assign(
        visit_id=7)), "--label", "bought", "--key", "visit_id", "--kind", "binary"), 3,
     "rows share their key"),
    ("binary with three classes", lambda p: ("--table", bad_table(p, "three", visits(
        "multiclass")), "--label", "bought", "--key", "visit_id", "--kind", "binary"), 2,
     "--kind binary needs two classes; the label has 3"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "args", "code", "says"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_bad_call_is_one_paragraph_and_writes_nothing(case, args, code, says, project, tmp_path):
    done = init(project, *args(project), uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == code, (done.stdout, done.stderr)
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""


def test_existing_files_are_never_overwritten_without_force(project, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    suite = project / "problems" / "binary_visits" / "expectations" / "binary_visits.yaml"
    suite.write_text(suite.read_text() + "# my own edit\n")
    try:
        done = init(project, *init_args("binary"), uri=uri)
        assert done.returncode == 2, done.stderr
        assert "would overwrite 8 file(s): problems/binary_visits/__init__.py" in done.stderr
        assert "problems/binary_visits/expectations/binary_visits.yaml" in done.stderr
        assert "--force" in done.stderr
        assert suite.read_text().endswith("# my own edit\n")
        done = init(project, *init_args("binary", "--force"), uri=uri)
        assert done.returncode == 0, done.stderr
        # the same table gives the same files: the forced rewrite is the committed one; the
        # default problem is now this one
        assert git(project, "status", "--porcelain", "--untracked-files=all") == f"M {SETTINGS}"
    finally:
        git(project, "checkout", "--", ".")


def test_several_tables_leave_a_join_to_write_and_training_says_so(project, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    devices = pd.DataFrame({"device": ["phone", "desktop", "tablet"], "screen": [6.1, 24.0, 11.0]})
    folder = project / "problems" / "two_tables"
    try:
        done = init(project, *init_args("binary"), "--table", bad_table(project, "devices",
                    devices), "--name", "two_tables", uri=uri)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Write records() in problems/two_tables/problem.py" in done.stdout
        assert (folder / "expectations" / "devices.yaml").is_file()
        done = run_cli("train", "--env", "dev", "--problem", "two_tables",
                       cwd=project, tracking_uri=uri)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "records() is not written yet" in done.stderr
        assert "problems/flights/problem.py" in done.stderr and "Traceback" not in done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        git(project, "checkout", "--", SETTINGS)
