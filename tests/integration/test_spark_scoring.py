"""`ml-project predict --engine spark` on local[2]: the pandas path's output, row for row, for
each task kind (a classifier's class and probabilities, a regressor's value).

Needs the `[spark]` extra (pyspark) and Java 17; `make test` installs the extra.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.conftest import git, java_present, last_json, require, run_cli
from tests.integration.conftest import BATCH_ROWS
from tests.synthetic import KINDS

pytestmark = [pytest.mark.integration, pytest.mark.slow]
require(
    "pyspark and Java 17",
    importlib.util.find_spec("pyspark") is not None and java_present(),
    "make install-spark, and apt-get install openjdk-17-jre-headless",
)


def predict(store, project, *args, tmpdir):
    return run_cli(
        "predict",
        "--env",
        "dev",
        "--problem",
        store["problem"],
        *args,
        cwd=project,
        tracking_uri=store["uri"],
        env={"TMPDIR": str(tmpdir)},
    )


# The one kind whose Spark scoring is a command of its own (its own process and JVM); the other
# kinds and the checks below are commands run one after the other in one process, each starting
# and stopping its own session in one JVM (tests/integration/spark_cases.py).
OWN_PROCESS = KINDS[0]


def spark_cases(cases: list[dict], folder, *, tmpdir, project) -> dict:
    """Run `cases` ({"name", "args", "store"}) in one process and one JVM: {name:
    CompletedProcess-like namespace with returncode, stdout, stderr}."""
    folder.mkdir()
    spec = {
        "master": "local[2]",
        "scratch": str(folder),
        "cases": [
            {
                "name": case["name"],
                "args": ["predict", "--env", "dev", "--problem", case["store"]["problem"],
                         *case["args"]],
                "cwd": str(project),
                "env": {"MLFLOW_TRACKING_URI": case["store"]["uri"]},
            }
            for case in cases
        ],
    }  # fmt: skip
    (folder / "cases.json").write_text(json.dumps(spec))
    environ = {**os.environ, "PYTHONPATH": str(project), "TMPDIR": str(tmpdir)}
    environ.pop("ML_PROJECT_ROOT", None)
    helper = Path(__file__).with_name("spark_cases.py")
    done = subprocess.run(
        [sys.executable, str(helper), str(folder / "cases.json")],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        case["name"]: SimpleNamespace(
            returncode=int((folder / f"{case['name']}.code").read_text()),
            stdout=(folder / f"{case['name']}.out").read_text(),
            stderr=(folder / f"{case['name']}.err").read_text(),
        )
        for case in cases
    }


def bad_batch(store, folder):
    """The binary batch with a value outside the suite's [-10, 10] for x1 (rows 1000-1149)."""
    rows = pd.read_parquet(store["batch"])
    rows.loc[1000:1149, "x1"] = 40.0
    bad = folder / "bad.parquet"
    rows.to_parquet(bad, index=False)
    return bad


def repeated_batch(store, folder):
    """300 rows of the binary batch and two of them once more: two repeated keys."""
    rows = pd.read_parquet(store["batch"]).head(300)
    rows = pd.concat([rows, rows.iloc[[7, 8]]], ignore_index=True)
    batch = folder / "repeated.parquet"
    rows.to_parquet(batch, index=False)
    return batch


@pytest.fixture(scope="module")
def scored(scoring_batches, synthetic_project, tmp_path_factory):
    """Each kind's batch scored by both engines, through the real CLI: the pandas engine and
    OWN_PROCESS's Spark engine as commands of their own, the other kinds' Spark scoring and the
    bad and repeated-key batches in one process (one JVM, a session each)."""
    folder = tmp_path_factory.mktemp("engines")
    tmpdir = folder / "tmp"
    tmpdir.mkdir()
    inputs = tmp_path_factory.mktemp("spark-inputs")
    runs = {}
    spark = ("--engine", "spark", "--spark-master", "local[2]")
    cases = []
    for kind in KINDS:
        for engine in ("pandas", "spark"):
            output = folder / f"{kind}-{engine}.parquet"
            args = (*spark, "--input", str(scoring_batches[kind]["batch"]),
                    "--output", str(output), "--json")  # fmt: skip
            runs[kind, engine] = {"output": output}
            if engine == "pandas" or kind == OWN_PROCESS:
                if engine == "pandas":
                    args = ("--engine", "pandas", *args[4:])
                runs[kind, engine]["done"] = predict(
                    scoring_batches[kind], synthetic_project, *args, tmpdir=tmpdir
                )
            else:
                cases.append({"name": kind, "args": args, "store": scoring_batches[kind]})
    binary = scoring_batches["binary"]
    bad = bad_batch(binary, inputs)
    repeated = repeated_batch(binary, inputs)
    checks = inputs / "out"
    refused = checks / "bad" / "scored.parquet"
    cases += [
        {"name": "bad", "store": binary,
         "args": (*spark, "--input", str(bad), "--output", str(refused))},
        {"name": "repeated", "store": binary,
         "args": (*spark, "--input", str(repeated), "--output", str(checks / "scored.parquet"))},
        {"name": "allowed", "store": binary,
         "args": (*spark, "--input", str(repeated), "--output", str(checks / "allowed.parquet"),
                  "--allow-duplicate-keys", "--json")},
    ]  # fmt: skip
    shared = spark_cases(cases, tmp_path_factory.mktemp("session") / "cases",
                         tmpdir=tmpdir, project=synthetic_project)  # fmt: skip
    for kind in KINDS:
        if kind != OWN_PROCESS:
            runs[kind, "spark"]["done"] = shared[kind]
    checked = {
        "bad": (bad, refused),
        "repeated": (repeated, checks / "scored.parquet"),
        "allowed": (repeated, checks / "allowed.parquet"),
    }
    return {
        "folder": folder,
        "tmpdir": tmpdir,
        "checks": {name: (shared[name], *paths) for name, paths in checked.items()},
        **runs,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_spark_output_equals_the_pandas_output_row_for_row(scored, scoring_batches, kind):
    for engine in ("pandas", "spark"):
        done = scored[kind, engine]["done"]
        assert done.returncode == 0, f"{engine}: {done.stderr[-3000:]}"
    pandas_rows = pd.read_parquet(scored[kind, "pandas"]["output"])
    spark_rows = pd.read_parquet(scored[kind, "spark"]["output"])  # a folder of part files
    assert len(spark_rows) == BATCH_ROWS
    # Same columns, order, types and values: probabilities bit for bit, in the input's order.
    pd.testing.assert_frame_equal(spark_rows, pandas_rows, check_exact=True)
    store = scoring_batches[kind]
    assert set(spark_rows["model_version"]) == {store["result"]["model_version"]}
    assert set(spark_rows["model_run_id"]) == {store["result"]["run_id"]}
    probabilities = [column for column in spark_rows if column.startswith("probability")]
    if kind == "regression":
        assert probabilities == [] and spark_rows["prediction"].dtype == "float64"
    else:
        assert spark_rows["prediction"].nunique() > 1  # more than one class occurs
        assert probabilities[-1].startswith("probability_")


def test_spark_summary_names_the_champion_and_counts_rows(scored, scoring_batches):
    summary = last_json(scored["binary", "spark"]["done"].stdout)
    store = scoring_batches["binary"]
    assert summary["rows"] == BATCH_ROWS
    assert summary["model_uri"] == store["model_uri"]
    assert summary["model_version"] == store["result"]["model_version"]
    assert summary["rows_per_second"] > 0


def test_spark_is_quiet_and_leaves_nothing_behind(scored, synthetic_project):
    for kind in KINDS:
        stderr = scored[kind, "spark"]["done"].stderr
        for noise in ("Traceback", "FutureWarning", "Setting default log level", " WARN ", "INFO"):
            assert noise not in stderr, stderr[-3000:]
    assert list(scored["tmpdir"].iterdir()) == []  # Spark's scratch files are removed
    assert sorted(path.name for path in scored["folder"].iterdir()) == sorted(
        [*(f"{kind}-{engine}.parquet" for kind in KINDS for engine in ("pandas", "spark")), "tmp"]
    )  # no partial output
    assert git(synthetic_project, "status", "--porcelain") == ""  # no spark-warehouse, no derby.log


def test_spark_checks_the_input_with_the_expectation_suite(
    scored, scoring_batches, synthetic_project
):
    """A bad value stops the run with the suite's report (exit 3), and no output appears."""
    store = scoring_batches["binary"]
    done, bad, output = scored["checks"]["bad"]
    assert done.returncode == 3, done.stderr[-3000:]
    assert "column x1" in done.stderr and str(bad) in done.stderr
    # The report names the problem's suite file, not the copy Spark shipped to its workers.
    suite = synthetic_project / "problems" / store["problem"] / "expectations" / "model_input.yaml"
    assert str(suite) in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--input", "{batch}", "--output", "{out}.csv"), 2, "reads and writes Parquet only"),
        (("--input", "{missing}.parquet", "--output", "{out}.parquet"), 3, "no such file"),
        (("--engine", "pandas", "--spark-master", "local[2]"), 2, "--spark-master"),
        (("--input", "{batch}", "--output", "{file}"), 2, "is an existing file"),
    ],
)
def test_spark_usage_errors(scoring_batches, synthetic_project, tmp_path, args, code, message):
    store = scoring_batches["binary"]
    existing = tmp_path / "earlier.parquet"  # a pandas output, say: never replaced by a folder
    existing.write_bytes(b"PAR1 kept")
    values = {
        "batch": store["batch"],
        "out": tmp_path / "scored",
        "missing": tmp_path / "missing",
        "file": existing,
    }
    args = [arg.format(**values) for arg in args]
    if "--input" not in args:
        args += ["--input", str(store["batch"]), "--output", str(tmp_path / "s.parquet")]
    if "--engine" not in args:
        args = ["--engine", "spark", *args]
    done = predict(store, synthetic_project, *args, tmpdir=tmp_path)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert existing.read_bytes() == b"PAR1 kept"


def test_spark_refuses_repeated_keys_as_the_pandas_engine_does(scored):
    """Two rows of one key: refused (exit 3, nothing written) unless --allow-duplicate-keys,
    which scores every row and counts the repeats."""
    done, batch, output = scored["checks"]["repeated"]
    assert done.returncode == 3, done.stderr[-3000:]
    assert "2 row(s) repeat the key of an earlier row (key columns id" in done.stderr
    assert "Traceback" not in done.stderr and not output.exists()
    done, batch, allowed = scored["checks"]["allowed"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_json(done.stdout)["duplicate_key_rows"] == 2
    assert len(pd.read_parquet(allowed)) == len(pd.read_parquet(batch))
