"""`ml-project predict --engine spark` on local[2]: the pandas path's output, row for row.

Needs the `[spark]` extra (pyspark) and Java 17; `make test` installs the extra.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import git, last_json, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def predict(store, project, *args, tmpdir):
    return run_cli(
        "predict",
        "--env",
        "dev",
        *args,
        cwd=project,
        tracking_uri=store["uri"],
        env={"TMPDIR": str(tmpdir)},
    )


@pytest.fixture(scope="module")
def scored(scoring_store, project_copy, tmp_path_factory):
    """The same batch scored by both engines, through the real CLI."""
    folder = tmp_path_factory.mktemp("engines")
    tmpdir = folder / "tmp"
    tmpdir.mkdir()
    runs = {}
    for engine in ("pandas", "spark"):
        output = folder / f"{engine}.parquet"
        extra = ("--spark-master", "local[2]") if engine == "spark" else ()
        done = predict(
            scoring_store,
            project_copy,
            "--engine",
            engine,
            *extra,
            "--input",
            str(scoring_store["batch"]),
            "--output",
            str(output),
            "--json",
            tmpdir=tmpdir,
        )
        runs[engine] = {"done": done, "output": output}
    return {"folder": folder, "tmpdir": tmpdir, **runs}


def test_spark_output_equals_the_pandas_output_row_for_row(scored, scoring_store):
    for engine in ("pandas", "spark"):
        done = scored[engine]["done"]
        assert done.returncode == 0, f"{engine}: {done.stderr[-3000:]}"
    pandas_rows = pd.read_parquet(scored["pandas"]["output"])
    spark_rows = pd.read_parquet(scored["spark"]["output"])  # a folder of part files
    assert len(spark_rows) == 3000
    # Same columns, order, types and values: probabilities bit for bit, in the input's order.
    pd.testing.assert_frame_equal(spark_rows, pandas_rows, check_exact=True)
    assert set(spark_rows["model_version"]) == {scoring_store["result"]["model_version"]}
    assert set(spark_rows["model_run_id"]) == {scoring_store["result"]["run_id"]}
    assert 0 < spark_rows["prediction"].sum() < len(spark_rows)  # both classes occur


def test_spark_summary_names_the_champion_and_counts_rows(scored, scoring_store):
    summary = last_json(scored["spark"]["done"].stdout)
    assert summary["rows"] == 3000
    assert summary["model_uri"] == "models:/flights_delay_dev@champion"
    assert summary["model_version"] == scoring_store["result"]["model_version"]
    assert summary["rows_per_second"] > 0


def test_spark_is_quiet_and_leaves_nothing_behind(scored, project_copy):
    stderr = scored["spark"]["done"].stderr
    for noise in ("Traceback", "FutureWarning", "Setting default log level", " WARN ", "INFO"):
        assert noise not in stderr, stderr[-3000:]
    assert list(scored["tmpdir"].iterdir()) == []  # Spark's scratch files are removed
    assert sorted(path.name for path in scored["folder"].iterdir()) == [
        "pandas.parquet",
        "spark.parquet",
        "tmp",
    ]  # no partial output
    assert git(project_copy, "status", "--porcelain") == ""  # no spark-warehouse, no derby.log


def test_spark_checks_the_input_with_the_expectation_suite(scoring_store, project_copy, tmp_path):
    """A bad value stops the run with the suite's report (exit 3), and no output appears."""
    rows = pd.read_parquet(scoring_store["batch"])
    rows["distance"] = rows["distance"].astype(float)
    rows.loc[2000:2299, "distance"] = -40.0  # 10% of the rows: more than `mostly` allows
    bad = tmp_path / "bad.parquet"
    rows.to_parquet(bad, index=False)
    output = tmp_path / "out" / "scored.parquet"
    done = predict(
        scoring_store,
        project_copy,
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
    assert "column distance" in done.stderr and str(bad) in done.stderr
    # The report names the project's suite file, not the copy Spark shipped to its workers.
    assert str(project_copy / "expectations" / "model_input.yaml") in done.stderr
    assert "Traceback" not in done.stderr
    assert not output.parent.exists() or list(output.parent.iterdir()) == []


@pytest.mark.parametrize(
    "args, code, message",
    [
        (("--input", "{batch}", "--output", "{out}.csv"), 2, "reads and writes Parquet only"),
        (("--input", "{missing}.parquet", "--output", "{out}.parquet"), 3, "no such file"),
        (("--engine", "pandas", "--spark-master", "local[2]"), 2, "--spark-master"),
    ],
)
def test_spark_usage_errors(scoring_store, project_copy, tmp_path, args, code, message):
    values = {
        "batch": scoring_store["batch"],
        "out": tmp_path / "scored",
        "missing": tmp_path / "missing",
    }
    args = [arg.format(**values) for arg in args]
    if "--input" not in args:
        args += ["--input", str(scoring_store["batch"]), "--output", str(tmp_path / "s.parquet")]
    if "--engine" not in args:
        args = ["--engine", "spark", *args]
    done = predict(scoring_store, project_copy, *args, tmpdir=tmp_path)
    assert done.returncode == code, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
