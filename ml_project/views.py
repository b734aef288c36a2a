"""Views: every command's typed result rendered to text, Markdown or JSON, and nothing else.

A result is a frozen dataclass whose field names are its JSON keys; `plain` turns one (and the
dataclasses, paths and numpy numbers inside it) into JSON-ready values, so no result writes its
own `as_dict`. A field that must not be in the JSON is declared with `metadata={"json": False}`.
"""

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ml_project.drift import DriftReport, FeatureDrift, Quality
    from ml_project.monitor import MonitorResult
    from ml_project.predict import ScoringSummary

json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the results."
)


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts of their JSON fields, tuples as lists,
    paths as text, numpy scalars as Python numbers, non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("json", True)
        }
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(result: Any) -> str:
    """One JSON line of `result` (keys sorted, as every `--json` prints it)."""
    return json.dumps(plain(result), sort_keys=True)


def echo(result: Any, text: Callable[[Any], str] | None, *, as_json: bool) -> None:
    """A command's ending: its text for a person (when it has one), then its JSON line."""
    if text is not None:
        click.echo(text(result))
    if as_json:
        click.echo(to_json(result))


# --- training, the gate, promotion, show -------------------------------------------------------


# --- reproduce ---------------------------------------------------------------------------------


# --- batch scoring, serving, monitoring --------------------------------------------------------

TOP_FEATURES = 10  # the table and the plot show these worst by PSI, and every one that alerts
ALERTING = ("warn", "drift")


def scoring_line(summary: "ScoringSummary", source: str, target: str) -> str:
    """What `predict` says once `target` is written from `source` (as the user named them)."""
    repeated = (
        f"; {summary.duplicate_key_rows} rows repeat the key of an earlier row "
        f"({', '.join(summary.key_columns)}), scored all the same"
        if summary.duplicate_key_rows
        else ""
    )
    return (
        f"Scored {summary.rows} rows of {source} with "
        f"{summary.model_name or summary.model_uri} version {summary.model_version or '-'} in "
        f"{summary.seconds:.2f} s ({summary.rows_per_second:,.0f} rows/s) -> {target}"
        f"{repeated}"
    )


def drift_row(item: "FeatureDrift") -> dict[str, Any]:
    """A feature's row of the drift table; the ranges and the note are '' but for a time one."""
    ranges = (item.reference_range, item.batch_range)
    return {
        "feature": item.feature,
        "kind": item.kind,
        "psi": item.psi,
        "reference_null_rate": item.reference_null_rate,
        "batch_null_rate": item.batch_null_rate,
        "null_rate_change": item.null_rate_change,
        "status": item.status,
        "reference_range": " .. ".join(ranges[0]) if ranges[0] else "",
        "batch_range": " .. ".join(ranges[1]) if ranges[1] else "",
        "note": item.range_line(),
    }


def quality_data(quality: "Quality") -> dict[str, Any]:
    """Live quality as JSON data (an undefined value is None)."""
    computed = {"drop": quality.drop, "allowed": quality.allowed, "relative": quality.units}
    data: dict[str, Any] = {**plain(quality), **plain(computed), "status": quality.status}
    del data["units"]
    return data


def report_data(report: "DriftReport") -> dict[str, Any]:
    """A drift report as JSON data (the run's monitoring/report.json)."""
    return {
        "status": report.status,
        "rows": report.rows,
        "reasons": list(report.reasons),
        "features": [drift_row(item) for item in report.features],
        "prediction": drift_row(report.prediction),
        "quality": quality_data(report.quality) if report.quality else None,
    }


def monitor_data(result: "MonitorResult") -> dict[str, Any]:
    """`monitor --json`: the run's facts, its exit code and the report's keys."""
    return {**plain(result), "exit_code": result.exit_code, **report_data(result.report)}


def quality_line(quality: dict[str, Any]) -> str:
    """The live-quality line of the summary, from the report's `quality` data."""
    metric, rows = quality["metric"], f"{quality['rows']} labelled rows"
    dropped = quality["unlabelled_dropped"]
    rows += f" ({dropped} without a label dropped)" if dropped else ""
    if quality["status"] == "undefined":
        line = f"live {metric} undefined on {rows}: quality not compared"
    else:
        drop = quality["drop"]
        change = f"worse by {drop:.4f}" if drop > 0 else f"better by {-drop:.4f}"
        line = (
            f"live {metric} {quality['live']:.4f} on {rows} vs recorded "
            f"{quality['recorded']:.4f} ({change}, limit {quality['max_drop']}): "
            f"{quality['status']}"
        )
    return f"{line}; {quality['note']}" if quality.get("note") else line


def shown(statuses: Sequence[str], *, top: int) -> list[int]:
    """Positions of the features a summary shows, in the report's order (worst PSI first): the
    `top` worst, and every other one that warns or drifts (a null-rate move drifts at any PSI)."""
    return [at for at, status in enumerate(statuses) if at < top or status in ALERTING]


def monitor_notes(result: dict[str, Any], picked: int) -> list[str]:
    """The summary's lines under its table: time ranges, features not shown, live quality,
    repeated keys, the drift reasons and the run."""
    features = result["features"]
    notes = [row["note"] for row in features if row.get("note")]  # time ranges
    if picked < len(features):
        notes.append(
            f"{len(features) - picked} more features with a lower PSI, none of them "
            "warning or drifting, are in --json and the run's monitoring/drift_table.csv"
        )
    if result.get("quality"):
        notes.append(quality_line(result["quality"]))
    keys = result.get("duplicate_keys")
    if keys and keys["rows"]:
        notes.append(
            f"{keys['rows']} rows repeat the key of an earlier row ({', '.join(keys['columns'])}; "
            f"e.g. {keys['example']}): every row is counted"
        )
    notes += [f"drift: {reason}" for reason in result["reasons"]]
    notes.append(f"monitoring run {result['run_id']} (experiment id {result['experiment_id']})")
    return notes


def summary_text(result: dict[str, Any], *, markdown: bool = False, top: int = TOP_FEATURES) -> str:
    """The worst features and every one that alerts, the score, live quality, repeated keys
    and the verdict, as text or Markdown (`result`: monitor_data)."""
    head = (
        f"Monitored {result['rows']} rows of {result['input']} with {result['model_name']} "
        f"version {result['model_version']} (env {result['env']}): {result['status'].upper()}"
    )
    columns = ("feature", "kind", "PSI", "nulls: training -> batch", "status")
    features = result["features"]
    picked = [features[at] for at in shown([row["status"] for row in features], top=top)]
    rows = [
        (
            row["feature"],
            row["kind"],
            "-" if row["kind"] == "time" else f"{row['psi']:.3f}",
            f"{row['reference_null_rate']:.1%} -> {row['batch_null_rate']:.1%}",
            row["status"],
        )
        for row in [*picked, result["prediction"]]
    ]
    notes = monitor_notes(result, len(picked))
    if markdown:
        lines = [f"### {head}", "", "| " + " | ".join(columns) + " |"]
        lines.append("| --- | --- | ---: | --- | --- |")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([*lines, "", *[f"- {note}" for note in notes]]) + "\n"
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = [head]
    for row in [columns, *rows]:
        cells = (str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(("  " + "  ".join(cells)).rstrip())
    return "\n".join([*lines, *[f"  {note}" for note in notes]])


# --- init, data validation ---------------------------------------------------------------------
