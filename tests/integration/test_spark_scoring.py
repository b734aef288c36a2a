"""`ml-project predict --engine spark` on local[2]: the pandas path's output, row for row, for
each task kind (a classifier's class and probabilities, a regressor's value).

Needs the `[spark]` extra (pyspark) and Java 17; `make test` installs the extra.
"""

from __future__ import annotations

import importlib.util

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


@pytest.fixture(scope="module")
def scored(scoring_batches, synthetic_project, tmp_path_factory):
    """Each kind's batch scored by both engines, through the real CLI."""
    folder = tmp_path_factory.mktemp("engines")
    tmpdir = folder / "tmp"
    tmpdir.mkdir()
    runs = {}
    for kind in KINDS:
        for engine in ("pandas", "spark"):
            output = folder / f"{kind}-{engine}.parquet"
            extra = ("--spark-master", "local[2]") if engine == "spark" else ()
            done = predict(
                scoring_batches[kind],
                synthetic_project,
                "--engine",
                engine,
                *extra,
                "--input",
                str(scoring_batches[kind]["batch"]),
                "--output",
                str(output),
                "--json",
                tmpdir=tmpdir,
            )
            runs[kind, engine] = {"done": done, "output": output}
    return {"folder": folder, "tmpdir": tmpdir, **runs}


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
    scoring_batches, synthetic_project, tmp_path
):
    """A bad value stops the run with the suite's report (exit 3), and no output appears."""
    store = scoring_batches["binary"]
    rows = pd.read_parquet(store["batch"])
    rows.loc[1000:1149, "x1"] = 40.0  # outside the suite's [-10, 10]
    bad = tmp_path / "bad.parquet"
    rows.to_parquet(bad, index=False)
    output = tmp_path / "out" / "scored.parquet"
    done = predict(
        store,
        synthetic_project,
        "--engine",
        "spark",
        "--spark-master",
        "local[2]",
        "--input",
        str(bad),
        "--output",
        str(output),
        tmpdir=tmp_path,
    )
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


def test_spark_refuses_repeated_keys_as_the_pandas_engine_does(
    scoring_batches, synthetic_project, tmp_path
):
    """Two rows of one key: refused (exit 3, nothing written) unless --allow-duplicate-keys,
    which scores every row and counts the repeats."""
    store = scoring_batches["binary"]
    rows = pd.read_parquet(store["batch"]).head(300)
    rows = pd.concat([rows, rows.iloc[[7, 8]]], ignore_index=True)
    batch = tmp_path / "repeated.parquet"
    rows.to_parquet(batch, index=False)
    output = tmp_path / "out" / "scored.parquet"
    args = ("--engine", "spark", "--spark-master", "local[2]", "--input", str(batch))
    done = predict(store, synthetic_project, *args, "--output", str(output), tmpdir=tmp_path)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "2 row(s) repeat the key of an earlier row (key columns id" in done.stderr
    assert "Traceback" not in done.stderr and not output.exists()
    allowed = tmp_path / "out" / "allowed.parquet"
    done = predict(
        store, synthetic_project, *args, "--output", str(allowed), "--allow-duplicate-keys",
        "--json", tmpdir=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_json(done.stdout)["duplicate_key_rows"] == 2
    assert len(pd.read_parquet(allowed)) == len(rows)
