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

from tests.conftest import commit_all, empty_store, git, last_json, make_project_copy, run_cli
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
    uri = empty_store(tmp_path_factory.mktemp("init-store"))
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
    others = {SETTINGS, "Dockerfile"}
    assert all(path.startswith(("problems/", "data/")) for path in changed if path not in others)
    # the image serves the new default problem's prod champion
    served = "ARG MODEL_URI=models:/regression_visits_prod@champion"
    assert served in (project / "Dockerfile").read_text().splitlines()
    # one line of the project's settings changed: the default problem (the last one made)
    diff = git(project, "show", "--format=", "--unified=0", "HEAD", "--", SETTINGS).splitlines()
    removed, added = [line for line in diff if line.startswith(("+p", "-p"))]
    was = removed.split()[1]  # the template's default here; a fork's own in a fork
    assert removed.startswith("-problem: ") and (problems / was).is_dir()
    assert added == "+" + removed[1:].replace(f"problem: {was}", "problem: regression_visits")
    assert (problems / was / "problem.py").is_file()  # the previous default is still there
    base = (folder / "environments" / "base.yaml").read_text()
    assert "binary_visits: data/binary_visits.csv" in base
    assert "categorical: [device]" in base and "numeric: [minutes, pages]" in base
    assert "referrer: free text or identifier" in base
    suite = (folder / "expectations" / "binary_visits.yaml").read_text()
    assert "expect_column_values_to_be_unique" in suite and "observed 2 values" in suite
    # 1500 rows: staging trains on a seeded half, a real subset of prod's rows
    assert "sample_fraction: 0.5" in (folder / "environments" / "staging.yaml").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_an_initialised_problem_goes_the_whole_path(kind, project, tmp_path):
    """As initialised, with no hand edit: dev and staging training pass the gate, `reproduce`
    rebuilds the staging champion identically, `predict` scores the table, and `mlflow models
    serve` answers over HTTP what `predict` wrote."""
    problem = f"{kind}_visits"
    uri = empty_store(tmp_path)
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
    uri = empty_store(tmp_path)
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
        # default problem, and the image's served model, are now this one's
        changed = git(project, "status", "--porcelain", "--untracked-files=all").splitlines()
        assert {line.strip() for line in changed} == {f"M {SETTINGS}", "M Dockerfile"}
    finally:
        git(project, "checkout", "--", ".")


def test_a_table_sharing_a_unique_column_is_joined_and_read(project, tmp_path):
    """A further table whose shared column names one of its rows: init writes a records() that
    joins it, reads its columns, checks them in the model input, and keeps its key unique;
    training runs with no hand edit."""
    uri = empty_store(tmp_path)
    devices = pd.DataFrame({"device": ["phone", "desktop", "tablet"], "screen": [6.1, 24.0, 11.0]})
    folder = project / "problems" / "two_tables"
    try:
        done = init(project, *init_args("binary"), "--table", bad_table(project, "devices",
                    devices), "--name", "two_tables", uri=uri)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Joined in records(): devices on device" in done.stdout
        assert "Write records()" not in done.stdout
        code = (folder / "problem.py").read_text()
        assert "'devices': ['device'],  # joined on device" in code
        base = (folder / "environments" / "base.yaml").read_text()
        assert "numeric: [minutes, pages, screen]" in base
        model_input = (folder / "expectations" / "model_input.yaml").read_text()
        assert "{column: screen, min_value: -2.9, max_value: 33.0}" in model_input
        assert (
            "- type: expect_column_values_to_be_unique\n    kwargs: {column: device}"
            in (folder / "expectations" / "devices.yaml").read_text()
        )
        done = run_cli("train", "--env", "dev", "--problem", "two_tables", "--json",
                       cwd=project, tracking_uri=uri)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert last_json(done.stdout)["gate"]["status"] == "passed"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        git(project, "checkout", "--", SETTINGS)


def test_a_table_with_no_guessable_join_leaves_records_to_write(project, tmp_path):
    uri = empty_store(tmp_path)
    sizes = pd.DataFrame({"size": ["s", "m", "l"], "grams": [10.0, 20.0, 30.0]})
    folder = project / "problems" / "unjoined"
    try:
        done = init(project, *init_args("binary"), "--table", bad_table(project, "sizes",
                    sizes), "--name", "unjoined", uri=uri)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Warning: no join guessed for records() (table sizes shares no column with " \
               "binary_visits)" in done.stdout  # fmt: skip
        assert "Write records() in problems/unjoined/problem.py" in done.stdout
        assert (folder / "expectations" / "sizes.yaml").is_file()
        done = run_cli("train", "--env", "dev", "--problem", "unjoined",
                       cwd=project, tracking_uri=uri)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "records() is not written yet" in done.stderr
        assert "ml_project/problem.py" in done.stderr and "Traceback" not in done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        git(project, "checkout", "--", SETTINGS)


# --- a table with time, written for next month ------------------------------------------

TEAMS = ("ants", "bees", "cats", "dogs", "eels", "foxes", "gnus", "hens")
REFEREES = tuple(f"referee {i:02d}" for i in range(87))


def matches(rows: int = 2_000, *, seed: int = 4, first_season: int = 2019) -> pd.DataFrame:
    """One row per (season, team, round), written with its row number (pandas' index): a kickoff
    time (ISO 8601, UTC), a count, a measurement, an 87-value category, a constant and free text
    nobody reads, and a revenue that depends on them."""
    rng = np.random.default_rng(seed)
    seasons = rows // (len(TEAMS) * 50) + 1
    grid = (
        pd.MultiIndex.from_product(
            [range(first_season, first_season + seasons), TEAMS, range(1, 51)],
            names=["season", "team", "round"],
        )
        .to_frame(index=False)
        .head(rows)
    )
    start = pd.to_datetime(grid["season"].astype(str) + "-08-01", utc=True)
    kickoff = start + pd.to_timedelta(grid["round"] * 7 * 24 + rng.integers(12, 21, rows), "h")
    frame = grid.assign(
        kickoff=kickoff.dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        goals_count=rng.poisson(1.4, rows),
        temperature=rng.normal(14, 6, rows).round(1),
        referee=rng.choice(REFEREES, rows),
        competition="league",
        report=[f"report {i}" for i in rng.permutation(rows)],
    )
    effect = frame["team"].map(dict(zip(TEAMS, range(len(TEAMS)), strict=True)))
    frame["revenue"] = (5_000 + 900 * effect + 400 * frame["goals_count"]
                        + rng.gamma(2.0, 500.0, rows)).round(2)  # fmt: skip
    return frame


MATCHES = ("--table", "matches=data/matches.csv", "--label", "revenue",
           "--key", "season,team,round", "--kind", "regression")  # fmt: skip


@pytest.fixture(scope="module")
def timed(tmp_path_factory) -> Path:
    """A project where `init` made a problem from a table with a time column, committed."""
    root = make_project_copy(tmp_path_factory.mktemp("timed") / "project")
    (root / "data").mkdir()
    matches().to_csv(root / "data" / "matches.csv")  # with the index: "Unnamed: 0"
    done = init(root, *MATCHES, uri=f"sqlite:///{root.parent / 'mlflow.db'}")
    assert done.returncode == 0, done.stderr
    assert "Held out: the newest rows by kickoff (split.time_column)" in done.stdout
    commit_all(root, "init: matches")
    return root


def test_init_reads_time_key_components_and_an_87_value_category(timed):
    base = (timed / "problems" / "matches" / "environments" / "base.yaml").read_text()
    assert "time_column: kickoff" in base and "datetime: [kickoff]" in base
    assert "categorical: [team, referee]" in base  # 87 referees in 2000 rows: a category
    assert "numeric: [season, round, goals_count, temperature]" in base  # key components read
    assert "#   Unnamed: 0: a row number" in base
    assert "ignore: [season]" in base
    suite = (timed / "problems" / "matches" / "expectations" / "matches.yaml").read_text()
    assert "{column: kickoff, type_list: *text}" in suite  # not a number, not free text
    assert "{column: competition, value_set" not in suite  # not read: type and gaps only


def validate(project: Path, *args: str):
    return run_cli("validate-data", "--env", "dev", *args, cwd=project,
                   tracking_uri=f"sqlite:///{project.parent / 'mlflow.db'}")  # fmt: skip


def test_next_months_data_passes_and_bad_data_is_refused(timed, tmp_path):
    done = validate(timed)
    assert done.returncode == 0, done.stderr  # the very file init profiled
    today = matches()
    later = matches(seed=9, first_season=2024).assign(competition="cup")  # a new year
    later.loc[3, "revenue"] = today["revenue"].max() * 2  # a record, within the domain
    path = tmp_path / "later.csv"
    later.to_csv(path)
    done = validate(timed, "--table", f"matches={path}")
    assert done.returncode == 0, done.stderr
    bad = {
        "negative count": (later.assign(goals_count=-1), "column goals_count"),
        "unparseable date": (later.assign(kickoff="2024-02-30T15:00:00Z"), "column kickoff"),
        "null key": (later.assign(team=later["team"].where(later.index > 5)), "column team"),
        "duplicate key": (pd.concat([later, later.head(2)]), "expect_compound_columns_to_be"),
    }
    for case, (frame, says) in bad.items():
        frame.to_csv(path)
        done = validate(timed, "--table", f"matches={path}")
        assert done.returncode == 3, (case, done.stdout, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, case


def test_the_timed_problem_trains_on_a_time_split_with_no_hand_edit(timed, tmp_path):
    uri = empty_store(tmp_path)
    done = run_cli("train", "--env", "dev", "--json", cwd=timed, tracking_uri=uri)
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["gate"]["status"] == "passed", result["gate"]
    assert result["lineage"]["split.time_column"] == "kickoff"
    assert git(timed, "status", "--porcelain") == ""


def test_a_parquet_native_time_is_validated_as_init_profiled_it(project, tmp_path):
    """A Parquet datetime column (tz-aware) gets its native type rule, not a numeric one, and
    validate-data passes on the very file init profiled (the model input reads it as text)."""
    frame = matches(600).drop(columns=["report"])
    frame["kickoff"] = pd.to_datetime(frame["kickoff"], utc=True).dt.tz_convert("Europe/Oslo")
    path = project.parent / "native.parquet"
    frame.to_parquet(path, index=False)
    folder = project / "problems" / "native"
    uri = empty_store(tmp_path)
    try:
        done = init(project, "--table", f"native={path}", "--label", "revenue",
                    "--key", "season,team,round", "--kind", "regression", uri=uri)  # fmt: skip
        assert done.returncode == 0, done.stderr
        suite = (folder / "expectations" / "native.yaml").read_text()
        assert "{column: kickoff, type_: Timestamp}" in suite
        done = run_cli("validate-data", "--env", "dev", "--problem", "native",
                       cwd=project, tracking_uri=uri)  # fmt: skip
        assert done.returncode == 0, (done.stdout, done.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        git(project, "checkout", "--", SETTINGS)
