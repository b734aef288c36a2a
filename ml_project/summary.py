"""A Markdown summary of one training (`ml-project train --json`), for a CI job summary page.

Pure: a result dict in, Markdown out. It renders what it finds (any key may be absent) and
names what is missing; metric names, order and direction come from the task's registry
(`ml_project.metrics`), a metric it does not know is shown without a direction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ml_project.errors import ConfigError
from ml_project.metrics import REGISTRY
from ml_project.tracking import flatten
from ml_project.vocabulary import Lineage, lineage_of

ROWS = (
    ("train", "train"),
    ("test", "test (held out)"),
    ("used", "used (after sampling)"),
    ("labelled", "labelled"),
    ("unlabelled_dropped", "unlabelled, dropped"),
    ("records", "records read"),
)
KNOWN_SECTIONS = {"metrics", "baseline_metrics", "rows", "lineage", "timings", "gate", "validation"}
# Shown in the verdict line, the reasons or the metrics table, so not repeated as details.
GATE_SHOWN = {
    "status",
    "passed",
    "reasons",
    "checks",
    "metrics",
    "champion_version",
    "champion_metrics",
    "primary_metric",
}


def read_result(path: Path) -> dict[str, Any]:
    """The JSON object of a `--json` output: its last line that is a JSON object."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not a text file (byte {exc.start} is not UTF-8): give the saved output "
            "of `ml-project train --env ENV --json`."
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"Cannot read the training output {path}: {exc.strerror or exc}. It is written by "
            "`ml-project train --env ENV --json | tee FILE` (make ci-staging, make release-prod)."
        ) from exc
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(result, dict):
                return result
    raise ConfigError(
        f"{path} holds no JSON result: the training stopped before the end (see its log and "
        "exit code) or ran without --json."
    )


def result_field(result: dict[str, Any], key: str) -> str:
    """One value of the result by dotted key (`model_version`, `metrics.roc_auc`, `gate.status`)."""
    value: object = result
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"The training result has no key '{key}' (no '{part}').")
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def render_summary(result: dict[str, Any]) -> str:
    """The whole Markdown summary: title, gate verdict, metrics, rows, lineage, other sections."""
    env = result.get("env", "?")
    title = f"## Training in {env}: `{result.get('model_name', '?')}` version "
    title += f"{result.get('model_version', '?')}"
    parts = [title, render_gate(result.get("gate"))]
    parts.append(
        render_metrics(
            result.get("metrics") or {},
            result.get("gate"),
            task=result.get("task"),
            baseline=result.get("baseline_metrics"),
        )
    )
    if result.get("rows"):
        parts.append(render_rows(result["rows"]))
    parts.append(render_lineage(result))
    if result.get("validation"):
        lines = [f"- {escape(line)}" for line in result["validation"]]
        parts.append("\n".join(["Data validation:", *lines]))
    for key in sorted(set(result) - KNOWN_SECTIONS):
        if isinstance(result[key], dict):
            parts.append(render_mapping(key, result[key]))
    return "\n\n".join(part for part in parts if part) + "\n"


# The header of a release's one summary; each problem's job adds its row (render_verdict).
VERDICT_HEADER = (
    "| problem | model | version | outcome | champion after | reasons |\n"
    "| --- | --- | ---: | --- | ---: | --- |"
)


def render_verdict(result: dict[str, Any]) -> str:
    """One row under VERDICT_HEADER: what the training did to its problem's champion
    (`promoted`, `refused` by the gate, or `not promoted` when the result does not say)."""
    gate = result.get("gate") or {}
    status = str(gate.get("status", "")).lower()
    outcome = "promoted" if gate.get("promoted") else "refused" if status == "failed" else ""
    reasons = gate.get("reasons") or []
    cells = [
        escape(result.get("problem") or "?"),
        code(result.get("model_name", "?")),
        escape(result.get("model_version", "?")),
        outcome or "not promoted",
        escape(gate.get("champion_after") or "-"),
        escape("; ".join([reasons] if isinstance(reasons, str) else reasons) or "-"),
    ]
    return "| " + " | ".join(cells) + " |"


def render_gate(gate: dict[str, Any] | None) -> str:
    """The gate verdict in one bold line, the compared champion, and the reasons as a list."""
    if not gate:
        return "_No quality gate result in this output._"
    status = str(gate.get("status", "unknown"))
    mark = {"passed": "✅", "failed": "❌"}.get(status.lower(), "❔")
    line = f"{mark} **Quality gate: {status}**"
    if gate.get("primary_metric"):
        line += f" on `{gate['primary_metric']}`"
    champion = gate.get("champion_version")
    if "champion_version" in gate:
        line += (
            f", compared with champion version {champion}"
            if champion not in (None, "")
            else ", no champion to compare with"
        )
    lines = [line + "."]
    reasons = gate.get("reasons") or []
    for reason in [reasons] if isinstance(reasons, str) else reasons:
        lines.append(f"- {escape(reason)}")
    details = {key: value for key, value in gate.items() if key not in GATE_SHOWN}
    if isinstance(details.get("comparison"), dict):  # its champion part is in the metrics table
        details["comparison"] = {
            key: value for key, value in details["comparison"].items() if key != "champion"
        }
    if details:
        lines += ["", render_mapping("gate details", details)]
    return "\n".join(lines)


def render_metrics(
    metrics: dict[str, Any],
    gate: dict[str, Any] | None,
    *,
    task: str | None = None,
    baseline: dict[str, Any] | None = None,
) -> str:
    """Held-out metrics in the task's registry order, with an arrow for the better direction;
    beside them the baseline's (a model that ignores the features, scored on the same rows)
    and the champion's when the gate compared the two. The gate's primary metric is bold."""
    if not metrics:
        return "_No metrics in this output._"
    gate = gate or {}
    champion = gate.get("champion_metrics") or {}
    primary = gate.get("primary_metric")
    columns = [("this model", metrics)]
    if baseline:
        columns.append(("baseline (no features)", baseline))
    if champion:
        columns.append(("champion", champion))
    header = "| held-out metric | " + " | ".join(title for title, _ in columns) + " |"
    rows = [header, "| --- |" + " ---: |" * len(columns)]
    for name in metric_names(task, metrics):
        label = f"**{name}**" if name == primary else name
        cells = " | ".join(number(column.get(name)) for _, column in columns)
        rows.append(f"| {label}{direction(task, name)} | {cells} |")
    return "\n".join(rows)


def metric_names(task: str | None, metrics: dict[str, Any]) -> list[str]:
    """The metrics present, in the registry's order for `task` (every task's order when the
    task is unknown), then any the registry does not name, sorted."""
    tasks = [task] if task in REGISTRY else list(REGISTRY)
    ordered = [name for kind in tasks for name in REGISTRY[kind]]
    names = [name for name in dict.fromkeys(ordered) if name in metrics]
    return names + sorted(set(metrics) - set(names))


def render_rows(rows: dict[str, Any]) -> str:
    lines = ["| rows | count |", "| --- | ---: |"]
    for key, label in ROWS:
        if key in rows:
            lines.append(f"| {label} | {count(rows[key])} |")
    known = {key for key, _ in ROWS}
    for key in sorted(set(rows) - known):
        lines.append(f"| {escape(key)} | {count(rows[key])} |")
    return "\n".join(lines)


def render_lineage(result: dict[str, Any]) -> str:
    """Where the model came from: commit, branch/tag, tree, seed, config, data, run, store."""
    seen = lineage_of(result.get("lineage", {}))
    fields = [
        ("problem", escape(result.get("problem") or "-")),
        ("task", escape(result.get("task") or "-")),
        ("commit", code(seen.commit or "unknown") + (" (dirty tree)" if seen.dirty else "")),
        ("branch", escape(seen.branch or "-")),
        ("tag", escape(seen.git_tag or "-")),
        ("seed", escape(seen.seed or "-")),
        ("config hash", code((seen.config_hash or "")[:16] or "-")),
        ("data digest", code((seen.data_digest or "")[:16] or "-")),
        ("held out", escape(split_line(seen))),
        ("run id", code(result.get("run_id", "-"))),
        ("model", code(result.get("model_uri", "-"))),
        ("tracking store", describe_store(result.get("tracking_uri", ""))),
    ]
    total = sum(value for value in result.get("timings", {}).values() if is_number(value))
    if total:
        fields.append(("training time", f"{total:.1f} s"))
    lines = ["| lineage | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in fields]
    return "\n".join(lines)


def split_line(seen: Lineage) -> str:
    """Which rows were held out: the newest by a time column (from its cut-off), or a seeded
    hash of the key; '-' when the result does not say (trained before split kinds)."""
    if seen.split_kind == "time":
        return f"the newest by {seen.split_column or '?'}, from {seen.split_cutoff or '?'}"
    return "a seeded hash of the key" if seen.split_kind == "hash" else "-"


def render_mapping(title: str, mapping: dict[str, Any]) -> str:
    """Any other section as a two-column table; nested dicts become dotted keys."""
    lines = [f"| {escape(title)} | |", "| --- | --- |"]
    for key, value in flatten(mapping, cell_text).items():
        lines.append(f"| {escape(key)} | {escape(value)} |")
    return "\n".join(lines)


def describe_store(uri: str) -> str:
    """The store's kind, never its address or credentials (job summaries can be public)."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        return f"tracking server ({scheme})"
    if scheme == "sqlite":
        return "embedded sqlite store"
    return escape(scheme or "unknown")


def cell_text(value: Any) -> str:
    """A value of a section as a table cell shows it (lists joined by '; ', '-' for nothing)."""
    if isinstance(value, list | tuple):
        return "; ".join(str(item) for item in value) or "-"
    if is_number(value):
        return number(value)
    return "-" if value is None else str(value)


def direction(task: str | None, name: str) -> str:
    """' ↑' or ' ↓' from the task's registry; for an unknown task, from every task that names
    the metric when they agree; '' when nothing says."""
    tasks = [task] if task in REGISTRY else list(REGISTRY)
    better = {REGISTRY[kind][name].higher_is_better for kind in tasks if name in REGISTRY[kind]}
    if len(better) != 1:
        return ""
    return " ↑" if better.pop() else " ↓"


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any) -> str:
    """An int as is, a float to 4 decimals, 'n/a' for NaN (a metric undefined on these rows,
    e.g. ROC AUC with one class), '-' for anything else (missing)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not is_number(value):
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else "n/a"


def count(value: Any) -> str:
    return f"{value:,}" if is_number(value) else escape(value)


def code(value: str) -> str:
    return f"`{str(value).replace('`', '')}`"


def escape(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
