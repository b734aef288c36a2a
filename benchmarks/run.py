"""Benchmarks: what the template costs over plain scikit-learn, and how it scales.

    make bench                      # or: python benchmarks/run.py [--repeats 5] [--scales 1,4,16]

Every measurement is a whole process (imports included), repeated; the median is reported
with min and max. Peak RSS comes from the kernel's accounting of each child (wait4). Training
runs on a clean clone of the committed code against a temporary MLflow store, after one
warm-up run that creates the store. Results: benchmarks/results/<date>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
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
        "--json",
        *data_args,
    ]
    bare_cmd = [sys.executable, str(HERE / "bare_train.py"), "--env", env_name, *data_args]
    measure_rss(pipeline_cmd, cwd=project, env=env)  # warm-up: creates the store, fills caches
    runs = {"pipeline": [], "bare": []}
    for _ in range(repeats):
        runs["pipeline"].append(measure_rss(pipeline_cmd, cwd=project, env=env))
        runs["bare"].append(measure_rss(bare_cmd, cwd=project, env=env))
    stages: dict[str, list[float]] = {}
    for run in runs["pipeline"]:
        for stage, seconds in run["payload"].get("timings", {}).items():
            stages.setdefault(stage, []).append(seconds)
    pipeline_wall = summarise([r["wall_s"] for r in runs["pipeline"]])
    bare_wall = summarise([r["wall_s"] for r in runs["bare"]])
    return {
        "label": label,
        "env": env_name,
        "rows_train": runs["bare"][0]["payload"].get("rows_train"),
        "pipeline_wall_s": pipeline_wall,
        "bare_wall_s": bare_wall,
        "pipeline_peak_rss_mib": summarise([r["peak_rss_mib"] for r in runs["pipeline"]]),
        "bare_peak_rss_mib": summarise([r["peak_rss_mib"] for r in runs["bare"]]),
        "ratio": pipeline_wall["median"] / bare_wall["median"],
        "overhead_s": pipeline_wall["median"] - bare_wall["median"],
        "stages_s": {stage: statistics.median(values) for stage, values in stages.items()},
        "repeats": repeats,
    }


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
        f"Benchmarks of {results['date']} on {results['machine']['cpus']} CPUs "
        f"({results['machine']['processor']}, {results['machine']['memory_gib']} GiB), "
        f"Python {results['machine']['python']}, {results['repeats']} repeats, median (min-max).",
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
        "| stage (median s) | " + " | ".join(i["label"] for i in results["training"]) + " |",
        "| --- |" + " ---: |" * len(results["training"]),
    ]
    stages = sorted({s for item in results["training"] for s in item["stages_s"]})
    for stage in stages:
        cells = [f"{item['stages_s'].get(stage, float('nan')):.2f}" for item in results["training"]]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines += ["", "| target | goal | measured | verdict |", "| --- | --- | ---: | --- |"]
    for target in results["targets"]:
        sign = "<" if target["lower_is_better"] else ">="
        value = target["value"]
        shown = "not measured" if value is None else f"{value:.2f} {target['unit']}"
        lines.append(
            f"| {target['name']} | {sign} {target['goal']} {target['unit']} | {shown} | "
            f"{verdict(value, target['goal'], lower_is_better=target['lower_is_better'])} |"
        )
    return "\n".join(lines) + "\n"


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
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from ml_project.data import demo_data_paths

    flights_path, weather_path = demo_data_paths()
    scales = [int(s) for s in args.scales.split(",") if s]
    results: dict = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "repeats": args.repeats,
        "training": [],
    }
    with tempfile.TemporaryDirectory(prefix="ml-project-bench-") as tmp:
        workdir = Path(tmp)
        project = clean_clone(workdir / "project")
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
                scaled = write_scaled(flights_path, HERE / ".data", scale)
                data_args = ["--flights", str(scaled), "--weather", str(weather_path)]
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
    by_label = {item["label"]: item for item in results["training"]}
    results["targets"] = [
        target(
            "staging training, end to end",
            12.0,
            "s",
            by_label["staging 1x"]["pipeline_wall_s"]["median"],
        ),
        target(
            "prod overhead over bare at 1x", 5.0, "s", by_label.get("prod 1x", {}).get("overhead_s")
        ),
        target(
            "prod time ratio over bare at 16x", 1.2, "x", by_label.get("prod 16x", {}).get("ratio")
        ),
    ]
    args.output.mkdir(parents=True, exist_ok=True)
    stem = args.output / results["date"]
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    stem.with_suffix(".md").write_text(table)
    print(table)
    print(f"Wrote {stem.with_suffix('.json')} and {stem.with_suffix('.md')}")


if __name__ == "__main__":
    main()
