"""Benchmarks: what the template costs over plain scikit-learn, and how it scales.

    make bench                      # or: python benchmarks/run.py [--repeats 5] [--scales 1,4,16]
    python benchmarks/run.py --quick    # smoke run: 1 repeat, 1x only, 50 serving calls
    python benchmarks/run.py --only scoring --name 2026-12-07b   # scoring and serving only
    python benchmarks/run.py --only install --name 2026-12-07c   # a fresh clone's make train only
    python benchmarks/self_cpu.py predict ...   # a command's own CPU and its forked checks'
    python benchmarks/run.py --whole    # also a fresh clone's `make train` (empty and warm package
                                        # caches), `bash .ci/run` and ci.yml's first job

They measure the flights demo (problems/flights, the heaviest example) through the commands a
user runs: `ml-project train --problem flights` against bare_train.py (the same read, join,
split, fit and score as a plain script), `extract-batch` and `predict` against the model's
own calls (raw_predict.py), and the serving image's command. Larger sizes are synthetic copies
of the flights table (synthetic.py) given as `--table flights=PATH`.

Every measurement is a whole process (imports included), repeated; the median is reported
with min and max. Peak RSS comes from the kernel's accounting of each child (wait4). Training
runs on a clean clone of the committed code against a temporary MLflow store, after one
warm-up run that creates the store. Results: benchmarks/results/<date>.json and .md
(<date>-quick.* for --quick), ending with issue 28's targets, each with its measured value and
verdict ("not measured" for what the run skipped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from synthetic import write_scaled  # noqa: E402

PROBLEM = "flights"


def measure_rss(command: list[str], *, cwd: Path, env: dict) -> dict:
    """Like `measure`, with the child's own peak RSS from wait4."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    try:
        payload = json.loads(last)
    except json.JSONDecodeError:
        payload = {}
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "payload": payload}


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def clean_clone(destination: Path) -> Path:
    """A clean clone of the committed code (staging and prod refuse a dirty tree)."""
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(destination)], check=True)
    return destination


def environment(project: Path, store: Path) -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(project),
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def bench_training(
    project: Path, workdir: Path, *, env_name: str, data_args: list[str], repeats: int, label: str
) -> dict:
    """Pipeline vs bare script on the same data, `repeats` times each (after a warm-up)."""
    store = workdir / f"store-{label}"
    store.mkdir()
    env = environment(project, store)
    pipeline_cmd = [
        sys.executable,
        "-m",
        "ml_project",
        "train",
        "--env",
        env_name,
        "--problem",
        PROBLEM,
        "--json",
        *data_args,
    ]
    bare_cmd = [sys.executable, str(HERE / "bare_train.py"), "--env", env_name, *data_args]
    # the targets' runs check every suite on every row; `reused` runs take the warm-up's passed
    # verdicts of the same rows (validation.reuse_verdicts, the default)
    checked_cmd = [*pipeline_cmd, "--set", "validation.reuse_verdicts=false"]
    measure_rss(pipeline_cmd, cwd=project, env=env)  # warm-up: creates the store, fills caches
    runs: dict[str, list[dict]] = {"pipeline": [], "bare": [], "reused": []}
    for _ in range(repeats):
        runs["pipeline"].append(measure_rss(checked_cmd, cwd=project, env=env))
        runs["bare"].append(measure_rss(bare_cmd, cwd=project, env=env))
        runs["reused"].append(measure_rss(pipeline_cmd, cwd=project, env=env))
    stages: dict[str, list[float]] = {}
    for run in runs["pipeline"]:
        for stage, seconds in run["payload"].get("timings", {}).items():
            stages.setdefault(stage, []).append(seconds)
    pipeline_wall = summarise([r["wall_s"] for r in runs["pipeline"]])
    bare_wall = summarise([r["wall_s"] for r in runs["bare"]])
    reused_wall = summarise([r["wall_s"] for r in runs["reused"]])
    return {
        "label": label,
        "env": env_name,
        "rows_train": runs["pipeline"][0]["payload"].get("rows", {}).get("train"),
        "bare_rows_train": runs["bare"][0]["payload"].get("rows_train"),
        "pipeline_wall_s": pipeline_wall,
        "bare_wall_s": bare_wall,
        "pipeline_peak_rss_mib": summarise([r["peak_rss_mib"] for r in runs["pipeline"]]),
        "bare_peak_rss_mib": summarise([r["peak_rss_mib"] for r in runs["bare"]]),
        "ratio": pipeline_wall["median"] / bare_wall["median"],
        "overhead_s": pipeline_wall["median"] - bare_wall["median"],
        "stages_s": {stage: statistics.median(values) for stage, values in stages.items()},
        "reused_wall_s": reused_wall,
        "reused_ratio": reused_wall["median"] / bare_wall["median"],
        "reused_stages_s": {
            stage: statistics.median(
                r["payload"].get("timings", {}).get(stage, 0.0) for r in runs["reused"]
            )
            for stage in stages
        },
        "reused_validation_s": statistics.median(
            r["payload"].get("timings", {}).get("validation", float("nan")) for r in runs["reused"]
        ),
        "repeats": repeats,
    }


def champion_uri(project: Path) -> str:
    """The prod champion of the benchmarked problem (its `<name>_prod` registered model)."""
    from ml_project.settings import load_settings

    return f"models:/{load_settings('prod', problem=PROBLEM, root=project).model_name}@champion"


def predict_command(batch: Path, output: Path) -> list[str]:
    """`ml-project predict` of `batch` with the prod champion, as the benchmarks time it."""
    return [
        *(sys.executable, "-m", "ml_project", "predict", "--env", "prod", "--problem", PROBLEM),
        *("--input", str(batch), "--output", str(output), "--json"),
    ]


def bench_scoring(project: Path, workdir: Path, *, store: Path, repeats: int) -> dict:
    """`ml-project predict` on every record of the problem against the champion's own calls."""
    env = environment(project, store)
    records = workdir / "records.parquet"
    extract = [sys.executable, "-m", "ml_project", "extract-batch", "--env", "prod"]
    subprocess.run(
        [*extract, "--problem", PROBLEM, "--output", str(records)],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    uri = champion_uri(project)
    predict_cmd = predict_command(records, workdir / "scored.parquet")
    measure_rss(predict_cmd, cwd=project, env=env)  # warm-up
    runs = [measure_rss(predict_cmd, cwd=project, env=env) for _ in range(repeats)]
    raw = measure_rss(
        [
            sys.executable,
            str(HERE / "raw_predict.py"),
            "--model-uri",
            uri,
            "--input",
            str(records),
            "--repeats",
            str(repeats),
            "--single-rows",
            "300",
        ],
        cwd=project,
        env=env,
    )["payload"]
    split = measure_rss(
        [sys.executable, str(HERE / "self_cpu.py"), *predict_cmd[3:]], cwd=project, env=env
    )
    batch = summarise([run["payload"]["rows_per_second"] for run in runs])
    baseline = summarise(raw["rows_per_second"])
    return {
        "rows": raw["rows"],
        "predict_rows_per_s": batch,
        "predict_process_wall_s": summarise([run["wall_s"] for run in runs]),
        "predict_peak_rss_mib": summarise([run["peak_rss_mib"] for run in runs]),
        "raw_model_rows_per_s": baseline,
        "ratio": batch["median"] / baseline["median"],
        "model_single_row": raw.get("single_row_ms", {}),
        "cpu_split": split["payload"],
    }


def busy_cores(count: int) -> list[subprocess.Popen]:
    """`count` processes that each keep one core busy (a loaded machine), stopped by the caller."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]


def bench_small_predict(
    project: Path, workdir: Path, *, store: Path, rows: int, repeats: int
) -> dict:
    """A whole `ml-project predict` process on a batch of `rows` records (what a user waits for
    on a small batch: imports, settings, the model's load, the checks, scoring, writing)."""
    import pandas as pd

    env = environment(project, store)
    batch = workdir / f"records-{rows}.parquet"
    pd.read_parquet(workdir / "records.parquet").head(rows).to_parquet(batch, index=False)
    command = predict_command(batch, workdir / f"scored-{rows}.parquet")
    measure_rss(command, cwd=project, env=env)  # warm-up
    runs = [measure_rss(command, cwd=project, env=env) for _ in range(repeats)]
    imports = [measure_rss(IMPORTS_ONLY, cwd=project, env=env) for _ in range(repeats)]
    split = measure_rss(
        [sys.executable, str(HERE / "self_cpu.py"), *command[3:]], cwd=project, env=env
    )
    return {
        "cpu_split": split["payload"],
        "rows": rows,
        "process_wall_s": summarise([run["wall_s"] for run in runs]),
        "imports_only_wall_s": summarise([run["wall_s"] for run in imports]),
    }


# The floor of a small `predict`: a process that only imports what the command's own process
# uses, in its order (the CLI, scoring with SciPy's stats and MLflow, the registry's SQL stores,
# scikit-learn and skops to load the model); great-expectations is imported by the forked check,
# beside these.
IMPORTS_ONLY = [
    sys.executable,
    "-c",
    "import ml_project.cli, ml_project.predict, mlflow.store.tracking.sqlalchemy_store, "
    "mlflow.store.model_registry.sqlalchemy_store, ml_project.estimators, skops.io",
]


def bench_serving(
    project: Path, workdir: Path, *, store: Path, requests: int, busy: int = 0
) -> dict:
    """Single-row `/invocations` latency of the serving image's command on the champion, with
    `busy` other processes each keeping a core busy while the requests are timed."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dockerfile = (ROOT / "Dockerfile").read_text()
    stage = dockerfile.split("FROM runtime AS serve", 1)[1].split("\nFROM ", 1)[0]
    entrypoint = json.loads(
        next(line for line in stage.splitlines() if line.startswith("ENTRYPOINT "))[11:]
    )
    env = environment(project, store) | {
        "MODEL_URI": champion_uri(project),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SERVING_WORKERS": "1",
        "SERVING_ENV": "prod",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    import pandas as pd

    from ml_project.settings import load_settings

    # what a client sends: the model's input columns (the signature), one record per request
    columns = load_settings("prod", problem=PROBLEM, root=project).features.columns
    rows = pd.read_parquet(workdir / "records.parquet", columns=columns).head(requests)
    bodies = [
        json.dumps(
            {"dataframe_split": json.loads(rows.iloc[[i]].to_json(orient="split", index=False))}
        ).encode()
        for i in range(len(rows))
    ]
    server = subprocess.Popen(
        entrypoint,
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the model server did not start") from None
                time.sleep(0.5)

        def call(body: bytes) -> float:
            request = urllib.request.Request(
                f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
            )
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as reply:
                reply.read()
            return (time.perf_counter() - start) * 1000

        for body in bodies[:20]:  # warm-up
            call(body)
        load = busy_cores(busy)
        try:
            cpu_before = process_cpu_s(server.pid)
            latencies = sorted(call(body) for body in bodies)
            server_cpu_ms = (process_cpu_s(server.pid) - cpu_before) * 1000 / len(bodies)
        finally:
            for process in load:
                process.kill()
                process.wait()
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))]

    return {
        "requests": len(latencies),
        "busy_cores": busy,
        "p50_ms": pct(0.5),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1],
        "server_cpu_ms_per_request": server_cpu_ms,
        "load_average": os.getloadavg()[0],
    }


def bench_serving_parts(project: Path, workdir: Path, *, store: Path) -> dict:
    """Where a served row's CPU goes, in process (serve_steps.py): MLflow's parse and schema
    enforcement, the model, and each of the model's steps."""
    command = [
        *(sys.executable, str(HERE / "serve_steps.py"), "--model-uri", champion_uri(project)),
        *("--input", str(workdir / "records.parquet"), "--rounds", "1"),
    ]
    return measure_rss(command, cwd=project, env=environment(project, store))["payload"]


def serving_parts_lines(results: dict) -> list[str]:
    """What a served row's CPU is spent on, and the part no platform step can remove."""
    parts, serving = results.get("serving_parts") or {}, results.get("serving") or {}
    if "invocations" not in parts or "server_cpu_ms_per_request" not in serving:
        return []
    cpu = {name: part["cpu_median_ms"] for name, part in parts.items()}
    enforce = cpu["pyfunc.predict"] - cpu["model.predict"]
    around = serving["server_cpu_ms_per_request"] - cpu["invocations"]
    steps = [(name[5:], value) for name, value in cpu.items() if name.startswith("step ")]
    last = steps[-1][1] if steps else cpu["model.predict"]
    floor = cpu["parse"] + enforce + max(around, 0.0) + last
    return [
        "",
        "Where a served row's CPU goes (in process, `benchmarks/serve_steps.py`, median CPU ms "
        f"a request): MLflow's `invocations` {cpu['invocations']:.1f} (its parse of the JSON by "
        f"the signature {cpu['parse']:.1f}, its schema enforcement {enforce:.1f}, the model's "
        f"predict {cpu['model.predict']:.1f}: "
        + ", ".join(f"{name} {value:.1f}" for name, value in steps)
        + f"); the server's CPU around it (HTTP, uvicorn, FastAPI, the thread hand-off) "
        f"{around:.1f}. Without any step of the platform or the problem, a request would still "
        f"cost {floor:.1f} ms of CPU: MLflow's parse, enforcement and HTTP path and the model's "
        "last step (for the boosting: its own categorical preprocessor and one Python call per "
        "tree), none of which the platform runs.",
    ]


def cpu_split_line(item: dict) -> list[str]:
    """The command's own process's CPU and its forked checks' (one run under self_cpu.py)."""
    split = item.get("cpu_split") or {}
    if not split:
        return []
    return [
        "",
        f"CPU of that command (one run): its own process {split['self_cpu_s']:.2f} s, the "
        f"model-input checks forked beside the scoring {split['children_cpu_s']:.2f} s: with a "
        "free core the wall follows the first.",
    ]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_clone_environment() -> dict:
    """This process's environment without the venv it may run in (its bin/ on PATH, its store,
    its PYTHONPATH): a fresh clone's `make` finds `python3` and `uv` as a new user's shell does."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")
    }
    if sys.prefix != sys.base_prefix:
        venv_bin = str(Path(sys.prefix) / "bin")
        path = env.get("PATH", "").split(os.pathsep)
        env["PATH"] = os.pathsep.join(entry for entry in path if entry.rstrip("/") != venv_bin)
    return env


def timed(command: list[str], cwd: Path, env: dict) -> dict:
    """Wall and CPU seconds (user + system of every process it waited for) of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall_s": wall, "cpu_s": cpu}


def fresh_clone_train(clone: Path, env: dict) -> dict:
    """The README's `make train` in a fresh clone (no .venv), split where make splits it: the
    install it depends on (`make install-run`: venv, the lock's pins, bytecode), then the
    training (`make train`, the install done)."""
    install = timed(["make", "install-run"], clone, env)
    train = timed(["make", "train"], clone, env)
    return {
        "wall_s": install["wall_s"] + train["wall_s"],
        "cpu_s": install["cpu_s"] + train["cpu_s"],
        "install": install,
        "train": train,
    }


def folder_mib(folder: Path) -> float:
    files = (path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    return sum(path.stat().st_size for path in files) / 2**20


def bench_whole(workdir: Path, *, ci_run: bool = True) -> dict:
    """A fresh clone's `make train` (fresh_clone_train): with empty package caches (cold: every
    package downloaded, UV_CACHE_DIR and PIP_CACHE_DIR pointed at a new folder, whose size after
    is what was downloaded, unpacked) and with the machine's own caches (warm, after an untimed
    `make install-spark` in another clone has filled them); then, with `ci_run`, `bash .ci/run`
    in the warm clone (lint, the [dev] and [spark] install, the whole test suite)."""
    env = fresh_clone_environment()
    empty = workdir / "empty-caches"
    cold_env = {**env, "PIP_CACHE_DIR": str(empty / "pip"), "UV_CACHE_DIR": str(empty / "uv")}
    cold = fresh_clone_train(clean_clone(workdir / "cold"), cold_env)
    cold["cache_mib"] = folder_mib(empty) if empty.exists() else 0.0
    shutil.rmtree(workdir / "cold")  # a venv is about 1 GB
    shutil.rmtree(empty, ignore_errors=True)
    subprocess.run(  # fills the caches
        ["make", "install-spark"],
        cwd=clean_clone(workdir / "warm-up"),
        env=env,
        check=True,
        capture_output=True,
    )
    shutil.rmtree(workdir / "warm-up")
    clone = clean_clone(workdir / "fresh")
    warm = fresh_clone_train(clone, env)
    out = {
        "make_train_cold_s": cold["wall_s"],
        "make_train_s": warm["wall_s"],
        "cold": cold,
        "warm": warm,
    }
    if ci_run:
        out["ci_run_s"] = timed(["bash", ".ci/run"], clone, env)["wall_s"]
    return out


def whole_lines(whole: dict) -> list[str]:
    """A fresh clone's `make train`, cold and warm, each split into install and training: what
    bounds it."""
    lines = []
    for key, how in (("warm", "the package caches warm"), ("cold", "empty package caches")):
        if key in whole:
            run = whole[key]
            downloaded = (
                f", {run['cache_mib']:.0f} MiB downloaded, unpacked" if "cache_mib" in run else ""
            )
            lines += [
                "",
                f"A fresh clone's `make train` with {how}: {run['wall_s']:.1f} s "
                f"({run['cpu_s']:.1f} CPU s): the install (`make install-run`: venv, the lock, "
                f"bytecode{downloaded}) {run['install']['wall_s']:.1f} s "
                f"({run['install']['cpu_s']:.1f} CPU s), the dev training "
                f"{run['train']['wall_s']:.1f} s ({run['train']['cpu_s']:.1f} CPU s).",
            ]
    return lines


def first_job_steps(workflow: Path) -> list[str]:
    """The `run:` steps of a workflow's first job (the one that needs no other): what a fork's
    pull request waits for before its first verdict."""
    import yaml

    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    first = next(job for job in jobs.values() if not job.get("needs"))
    return [step["run"] for step in first["steps"] if "run" in step]


def bench_first_job(workdir: Path) -> dict:
    """Wall seconds of ci.yml's first job's steps in a fresh clone (its install from the lock
    with the machine's package cache warm, as a cached CI runner has it)."""
    clone = clean_clone(workdir / "first-job")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")
    }
    steps = first_job_steps(clone / ".github" / "workflows" / "ci.yml")
    start = time.perf_counter()
    for step in steps:
        subprocess.run(
            ["bash", "-c", step],
            cwd=clone,
            env=env | {"PYTHON": sys.executable},
            check=True,
            capture_output=True,
        )
    return {"steps": steps, "wall_s": time.perf_counter() - start}


def issue_targets(results: dict) -> list[dict]:
    """Issue 28's targets: ratios against the bare script measured in the same run."""
    by_label = {item["label"]: item for item in results["training"]}

    def ratio(label: str):
        return by_label.get(label, {}).get("ratio")

    serving, busy = results.get("serving", {}), results.get("serving_busy", {})
    whole = results.get("whole", {})
    return [
        target("staging training / bare script", 2.0, "x", ratio("staging 1x")),
        target("prod training at 1x / bare script", 1.5, "x", ratio("prod 1x")),
        target("prod training at 16x / bare script", 1.15, "x", ratio("prod 16x")),
        target(
            "fixed cost of a training (prod 1x minus the bare script)",
            4.0,
            "s",
            by_label.get("prod 1x", {}).get("overhead_s"),
        ),
        target(
            "batch scoring rows/s, input rules included / the model's own calls",
            0.8,
            "x",
            results.get("scoring", {}).get("ratio"),
            lower_is_better=False,
        ),
        target(
            "a 500-row `ml-project predict`, whole process",
            4.0,
            "s",
            results.get("small_predict", {}).get("process_wall_s", {}).get("median"),
        ),
        target("serving one row over HTTP, p50, idle", 10.0, "ms", serving.get("p50_ms")),
        target("serving one row over HTTP, p99, idle", 25.0, "ms", serving.get("p99_ms")),
        target("serving one row over HTTP, p99, both cores busy", 150.0, "ms", busy.get("p99_ms")),
        target(
            "fresh clone `make train`, install included, warm package cache",
            45.0,
            "s",
            whole.get("make_train_s"),
        ),
        target(
            "fresh clone `make train`, install included, empty package cache",
            90.0,
            "s",
            whole.get("make_train_cold_s"),
        ),
        target(
            "a fork's first CI job (ci.yml's first job's steps)",
            180.0,
            "s",
            results.get("first_job", {}).get("wall_s"),
        ),
        target("`bash .ci/run` (lint and the whole suite)", 600.0, "s", whole.get("ci_run_s")),
        target(
            "pipeline peak RSS, any scale",
            24 * 1024,
            "MiB",
            max(
                (item["pipeline_peak_rss_mib"]["max"] for item in results["training"]), default=None
            ),
        ),
    ]


def machine() -> dict:
    import importlib.metadata

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "mlflow": importlib.metadata.version("mlflow"),
        "scikit-learn": importlib.metadata.version("scikit-learn"),
    }


def fmt(summary: dict, unit: str = "s", digits: int = 2) -> str:
    return (
        f"{summary['median']:.{digits}f} {unit} "
        f"({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"
    )


def verdict(value: float | None, target: float, *, lower_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    met = value <= target if lower_is_better else value >= target
    return "met" if met else "MISSED"


def markdown(results: dict) -> str:
    lines = [
        f"Benchmarks of problem {results['problem']}, {results['date']}, on "
        f"{results['machine']['cpus']} CPUs "
        f"({results['machine']['processor']}, {results['machine']['memory_gib']} GiB), "
        f"Python {results['machine']['python']}, {results['repeats']} repeats, median (min-max); "
        f"load average {results.get('load_average', 'not recorded')} at the start.",
    ]
    if results["training"]:
        lines += training_tables(results)
    else:
        lines += ["", "Training not measured in this run (`--only`)."]
    lines += scoring_lines(results)
    if "first_job" in results:
        first = results["first_job"]
        lines += [
            "",
            f"A fork's first CI job ({'; '.join(first['steps'])}) in a fresh clone: "
            f"{first['wall_s']:.0f} s.",
        ]
    lines += whole_lines(results.get("whole", {}))
    lines += ["", "| target | goal | measured | verdict |", "| --- | --- | ---: | --- |"]
    for target in results["targets"]:
        sign = "<=" if target["lower_is_better"] else ">="
        value = target["value"]
        shown = "not measured" if value is None else f"{value:.2f} {target['unit']}"
        lines.append(
            f"| {target['name']} | {sign} {target['goal']} {target['unit']} | {shown} | "
            f"{verdict(value, target['goal'], lower_is_better=target['lower_is_better'])} |"
        )
    return "\n".join(lines) + "\n"


def training_tables(results: dict) -> list[str]:
    lines = [
        "",
        "| training | rows (train) | pipeline | bare script | ratio | overhead | "
        "peak RSS pipeline | peak RSS bare |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for item in results["training"]:
        lines.append(
            f"| {item['label']} | {item['rows_train']:,} | {fmt(item['pipeline_wall_s'])} | "
            f"{fmt(item['bare_wall_s'])} | {item['ratio']:.2f}x | {item['overhead_s']:+.2f} s | "
            f"{item['pipeline_peak_rss_mib']['median']:.0f} MiB | "
            f"{item['bare_peak_rss_mib']['median']:.0f} MiB |"
        )
    lines += [
        "",
        "With the validation verdicts of the same rows reused (`validation.reuse_verdicts`, the "
        "default; the runs above check every suite):",
        "",
        "| training | pipeline, verdicts reused | ratio | validation |",
        "| --- | ---: | ---: | ---: |",
    ]
    for item in results["training"]:
        if "reused_wall_s" in item:
            lines.append(
                f"| {item['label']} | {fmt(item['reused_wall_s'])} | {item['reused_ratio']:.2f}x "
                f"| {item['reused_validation_s']:.2f} s |"
            )
    lines += [
        "",
        "| stage (median s) | " + " | ".join(i["label"] for i in results["training"]) + " |",
        "| --- |" + " ---: |" * len(results["training"]),
    ]
    stages = sorted({s for item in results["training"] for s in item["stages_s"]})
    for stage in stages:
        cells = [f"{item['stages_s'].get(stage, float('nan')):.2f}" for item in results["training"]]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    untimed = [
        item["pipeline_wall_s"]["median"] - sum(item["stages_s"].values())
        for item in results["training"]
    ]
    lines.append(
        "| (untimed: interpreter, CLI and pipeline imports, store connection, lineage, exit) | "
        + " | ".join(f"{value:.2f}" for value in untimed)
        + " |"
    )
    return lines


def scoring_lines(results: dict) -> list[str]:
    """Batch scoring, a small predict and serving, each with what bounds it."""
    lines: list[str] = []
    if "scoring" in results:
        scoring = results["scoring"]
        lines += [
            "",
            f"Batch scoring of {scoring['rows']:,} records: `ml-project predict` "
            f"{fmt(scoring['predict_rows_per_s'], 'rows/s', 0)} (whole process "
            f"{fmt(scoring['predict_process_wall_s'])}, peak RSS "
            f"{scoring['predict_peak_rss_mib']['median']:.0f} MiB) against the model's own "
            f"predict and predict_proba {fmt(scoring['raw_model_rows_per_s'], 'rows/s', 0)}: "
            f"{scoring['ratio']:.2f}x.",
        ]
        lines += cpu_split_line(scoring)
        single = scoring.get("model_single_row") or {}
        if single:
            lines += [
                "",
                f"The model's own predict on one row ({single['n']} rows, each alone, in "
                f"process): p50 {single['p50_ms']:.1f} ms, p99 {single['p99_ms']:.1f} ms, "
                f"{single['cpu_mean_ms']:.1f} ms CPU on average: the floor of a served request.",
            ]
    if "small_predict" in results:
        small = results["small_predict"]
        lines += [
            "",
            f"`ml-project predict` of {small['rows']} records, whole process: "
            f"{fmt(small['process_wall_s'])}.",
        ]
        lines += cpu_split_line(small)
        if "imports_only_wall_s" in small:
            lines += [
                "",
                "A process that only imports what that command's own process uses (the CLI, "
                "scoring, MLflow's SQL stores, scikit-learn, skops; great-expectations is "
                "imported by the check forked beside it), whole process: "
                f"{fmt(small['imports_only_wall_s'])}: the floor of a small `predict`.",
            ]
    for key, how in (("serving", "idle"), ("serving_busy", "both cores kept busy")):
        if key in results:
            serving = results[key]
            lines += [
                "",
                f"Online serving ({how}), {serving['requests']} single-row requests over "
                f"loopback, one worker: p50 {serving['p50_ms']:.1f} ms, p95 "
                f"{serving['p95_ms']:.1f} ms, p99 {serving['p99_ms']:.1f} ms, max "
                f"{serving['max_ms']:.1f} ms"
                + (
                    f"; the server's CPU {serving['server_cpu_ms_per_request']:.1f} ms a request, "
                    f"load average {serving['load_average']:.1f} after."
                    if "server_cpu_ms_per_request" in serving
                    else "."
                ),
            ]
            if key == "serving":
                lines += serving_parts_lines(results)
    return lines


def target(name: str, goal: float, unit: str, value, *, lower_is_better: bool = True) -> dict:
    return {
        "name": name,
        "goal": goal,
        "unit": unit,
        "value": value,
        "lower_is_better": lower_is_better,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the benchmarks and write the results.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scales", default="1,4,16", help="flights multipliers for prod")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    parser.add_argument("--requests", type=int, default=500, help="single-row serving calls")
    parser.add_argument(
        "--whole",
        action="store_true",
        help="also time a fresh clone's `make train` (cold and warm caches) and `bash .ci/run`",
    )
    parser.add_argument(
        "--only",
        choices=("all", "scoring", "install"),
        default="all",
        help="scoring: batch scoring, a small predict and serving only (prod 1x trained once, "
        "untimed, for its champion); install: a fresh clone's `make train` only, cold and warm "
        "(no training benchmark, no `.ci/run`)",
    )
    parser.add_argument("--name", help="results file stem (default: the date)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: --repeats 1 --scales 1 --requests 50, written as <date>-quick",
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.scales, args.requests = 1, "1", 50

    sys.path.insert(0, str(ROOT))
    from ml_project.pipeline import table_paths
    from ml_project.settings import load_settings

    scales = [int(s) for s in args.scales.split(",") if s]
    results: dict = {
        "date": dt.date.today().isoformat(),
        "problem": PROBLEM,
        "machine": machine(),
        "repeats": args.repeats,
        "load_average": round(os.getloadavg()[0], 1),
        "training": [],
    }
    with tempfile.TemporaryDirectory(prefix="ml-project-bench-") as tmp:
        workdir = Path(tmp)
        project = clean_clone(workdir / "project")
        settings = load_settings("prod", problem=PROBLEM, root=project)
        flights_path = table_paths(settings, project)["flights"]
        if args.only == "install":
            scales = []
        elif args.only == "scoring":
            print("prod at 1x, once, for its champion ...", flush=True)
            store = workdir / "store-prod 1x"
            store.mkdir()
            train = [sys.executable, "-m", "ml_project", "train", "--env", "prod"]
            measure_rss(
                [*train, "--problem", PROBLEM], cwd=project, env=environment(project, store)
            )
            scales = []
        else:
            print("staging (the pull-request job's core) ...", flush=True)
            results["training"].append(
                bench_training(
                    project,
                    workdir,
                    env_name="staging",
                    data_args=[],
                    repeats=args.repeats,
                    label="staging 1x",
                )
            )
        for scale in scales:
            print(f"prod at {scale}x ...", flush=True)
            data_args = []
            if scale > 1:
                scaled = write_scaled(
                    flights_path, HERE / ".data", scale, key_columns=settings.data.key_columns
                )
                data_args = ["--table", f"flights={scaled}"]
            results["training"].append(
                bench_training(
                    project,
                    workdir,
                    env_name="prod",
                    data_args=data_args,
                    repeats=args.repeats,
                    label=f"prod {scale}x",
                )
            )
        if args.only == "scoring" or "prod 1x" in {i["label"] for i in results["training"]}:
            print("batch scoring and online serving with the prod 1x champion ...", flush=True)
            store = workdir / "store-prod 1x"
            results["scoring"] = bench_scoring(project, workdir, store=store, repeats=args.repeats)
            results["small_predict"] = bench_small_predict(
                project, workdir, store=store, rows=500, repeats=args.repeats
            )
            results["serving"] = bench_serving(
                project, workdir, store=store, requests=args.requests
            )
            results["serving_parts"] = bench_serving_parts(project, workdir, store=store)
            results["serving_busy"] = bench_serving(
                project, workdir, store=store, requests=args.requests, busy=os.cpu_count() or 2
            )
        if args.only == "install":
            print("a fresh clone's make train, empty then warm package caches ...", flush=True)
            results["whole"] = bench_whole(workdir, ci_run=False)
        elif args.whole:
            print("a fresh clone's make train, then bash .ci/run ...", flush=True)
            results["whole"] = bench_whole(workdir)
            print("a fork's first CI job in a fresh clone ...", flush=True)
            results["first_job"] = bench_first_job(workdir)
    results["targets"] = issue_targets(results)
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / (args.name or results["date"] + ("-quick" if args.quick else ""))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"Wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
