"""Several `ml-project predict --engine spark` commands in one process and one Java VM.

A test helper: `python tests/integration/spark_cases.py CASES.json`. Each case runs the real CLI
entry point (`ml_project.cli.main`) in this process, one after the other: the JVM boots once for
all the cases instead of once per case. A first session, started here before the cases with its
files in CASES' "scratch", boots that JVM (its java.io.tmpdir, log configuration and
SPARK_LOCAL_DIRS are set at launch: a case's scratch folder, removed when the case ends, must not
be the JVM's) and stays active: the cases score in it one after the other, as several calls in
one notebook or spark-submit job do. Each case's stdout, stderr (file descriptors 1 and 2: the
JVM's lines too) and exit code are written next to CASES.json as <name>.out, <name>.err and
<name>.code.

CASES.json: {"master": "local[2]", "scratch": DIR, "cases": [{"name", "args", "cwd", "env"}]}.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path


def run_case(case: dict, folder: Path) -> None:
    """One CLI call with its own environment, working folder and output files."""
    from ml_project.cli import main

    name = case["name"]
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_fds = os.dup(1), os.dup(2)
    code = 0
    with open(folder / f"{name}.out", "wb") as out, open(folder / f"{name}.err", "wb") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        os.environ.update(case["env"])
        os.chdir(case["cwd"])
        sys.argv = ["ml-project", *case["args"]]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
    (folder / f"{name}.code").write_text(str(code))


def main() -> None:
    spec_path = Path(sys.argv[1])
    spec = json.loads(spec_path.read_text())
    from ml_project.spark_scoring import spark_session

    if len(spec["cases"]) > 1:
        spark, started = spark_session(master=spec["master"], scratch=Path(spec["scratch"]))
        assert started, "a session was already active"
        # Left active: every case scores in it, as a notebook's or a spark-submit job's calls
        # do (spark_session takes the active session), each shipping its suites again.
    try:
        for case in spec["cases"]:
            run_case(case, spec_path.parent)
    finally:
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()
        stop_jvm()
    used = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(usage.ru_utime + usage.ru_stime for usage in used)
    (spec_path.parent / "cpu-seconds").write_text(f"{cpu:.1f}")


def stop_jvm() -> None:
    """End pyspark's JVM and wait for it (its CPU time then counts as this process's children's,
    and no JVM outlives the helper)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    process = getattr(gateway, "proc", None)
    if process is not None:
        process.stdin.close()
        process.wait(timeout=120)


if __name__ == "__main__":
    main()
