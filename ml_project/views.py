"""Views: every command's typed result rendered to text, Markdown or JSON, and nothing else.

A result is a frozen dataclass whose field names are its JSON keys; `plain` turns one (and the
dataclasses, paths and numpy numbers inside it) into JSON-ready values, so no result writes its
own `as_dict`. A field that must not be in the JSON is declared with `metadata={"json": False}`.
"""

import dataclasses
import json
import math
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the results' modules import MLflow: not for a command that only renders
    from ml_project.pipeline import TrainResult
    from ml_project.promotion import Description, GateOutcome, PromotionResult, VersionView

EXACT = "exact"  # metadata={"json": EXACT}: a field already JSON-ready, NaN kept (json's NaN)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the results."
)


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts of their JSON fields, tuples as lists,
    paths as text, numpy scalars as Python numbers, non-finite floats as None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: getattr(value, f.name)
            if f.metadata.get("json") == EXACT
            else plain(getattr(value, f.name))
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

SHOW_WIDTH = 100  # columns `show` wraps a history line's reason at (never cutting a word)
HISTORY_INDENT = 23  # a wrapped reason's next lines start under the alias, past the time


def train_text(result: "TrainResult") -> str:
    """A few lines a person reads after training."""
    metrics, rows, lineage = result.metrics, result.rows, result.lineage
    dirty = " (dirty tree)" if lineage.get("git.dirty") == "true" else ""
    tested = ", ".join(f"{name} {metrics[name]:.4f}" for name in result.task_metrics)
    return "\n".join(
        [
            f"Trained {result.model_name} version {result.model_version} in env {result.env} "
            f"({result.task}, problem {result.problem}).",
            f"  run id     {result.run_id}",
            f"  model uri  {result.model_uri}",
            f"  rows       {rows['train']} train, {rows['test']} test "
            f"(of {rows['labelled']} labelled; {rows['unlabelled_dropped']} unlabelled dropped)"
            + split_words(lineage),
            f"  test       {tested}",
            f"  commit     {lineage.get('git.commit', '')[:12] or 'unknown'}{dirty}",
            f"  data       {lineage.get('data.digest', '')[:12]}",
            *[f"  validated  {line}" for line in result.validation],
            f"  store      {result.tracking_uri}",
            *gate_lines(result.gate),
            *[f"  settled    {item}" for item in result.settled_versions],
        ]
    )


def split_words(lineage: Mapping[str, str]) -> str:
    """How the held-out rows were chosen, when by time: the newest by which column, from when."""
    if lineage.get("split.kind") != "time":
        return ""
    return (
        f"; held out the newest by {lineage['split.time_column']}, from {lineage['split.cutoff']}"
    )


def gate_lines(outcome: "GateOutcome | Mapping[str, Any]") -> list[str]:
    """The gate's verdict and what it did to the aliases, for a summary (none without one)."""
    if isinstance(outcome, Mapping):
        return []
    if outcome.promoted:
        moved = f"champion {outcome.champion_before or 'none'} -> {outcome.champion_after}"
    else:
        moved = f"no alias; champion stays {outcome.champion_after or 'unset'}"
    lines = [f"  gate       {outcome.status} ({moved})"]
    return lines + [f"             - {reason}" for reason in outcome.reasons]


PROMOTION_WORDS = {"forced": "Forced", "rollback": "Rolled back", "copy": "Copied and gated"}


def promotion_text(result: "PromotionResult") -> str:
    """What `promote` or `rollback` did, for a person."""
    head = f"{PROMOTION_WORDS.get(result.action, result.action)}: {result.model_name} "
    head += f"version {result.version}"
    if result.action == "copy":
        source = result.source
        head += f" (from {source['model_name']} version {source['version']})"
    lines = [
        head,
        f"  champion   {result.champion_before or 'none'} -> {result.champion_after or 'none'}",
        f"  status     validation_status={result.validation_status}",
        f"  reason     {result.reason}",
        f"  store      {result.tracking_uri}",
    ]
    if result.action == "forced" and result.validation_status != "passed":
        lines.append("  warning    this version did not pass the gate; the move is recorded")
    return "\n".join(lines + gate_lines(result.gate))


def show_text(described: "Description", *, history_lines: int) -> str:
    """`show`: the aliases, a line per version, orphan warnings, then the latest history."""
    aliases = ", ".join(f"{k} -> {v}" for k, v in described.aliases.items()) or "none"
    primary = described.primary_metric
    lines = [
        f"{described.model_name} (env {described.env}, store {described.tracking_uri})",
        f"  aliases    {aliases}",
        "",
        f"  {'version':>7}  {'aliases':<19} {'gate':<8} {primary:>10} "
        f"{'vs':>4}  {'commit':<12} {'data':<12} {'seed':>5}  from",
    ]
    lines += [version_line(item, primary) for item in described.versions]
    for item in described.versions:
        if item.validation_status == "orphaned":
            lines.append(
                f"  warning    version {item.version} has no verdict and never will: "
                f"{item.validation_reasons}; the next training of env {described.env} "
                "marks it failed and clears its challenger alias"
            )
    history = described.history
    shown = history[-history_lines:] if history_lines > 0 else []
    lines += ["", f"  history ({len(shown)} of {len(history)} moves, oldest first)"]
    for entry in shown:
        move = (
            f"  {entry.get('time', '')[:19]}  {entry.get('alias', ''):<10} "
            f"{entry.get('from_version') or '-':>4} -> {entry.get('to_version') or '-':<4} "
            f"{entry.get('action', ''):<10} {entry.get('actor', '')}@"
            f"{(entry.get('commit') or '')[:7]}  "
        )
        lines += wrapped(move, str(entry.get("reason") or ""))
    return "\n".join(lines)


def version_line(item: "VersionView", primary: str) -> str:
    lineage, copied = item.lineage, item.copied_from
    origin = (
        f"{copied.get('copied_from.model')} v{copied.get('copied_from.version')}"
        if copied
        else f"run {lineage.get('run_id', '')[:8]}"
    )
    value = item.metrics.get(primary)
    return (
        f"  {item.version:>7}  {','.join(item.aliases) or '-':<19} "
        f"{item.validation_status:<8} {'-' if value is None else f'{value:.4f}':>10} "
        f"{item.compared_with or '-':>4}  "
        f"{lineage.get('git.commit', '')[:12]:<12} {lineage.get('data.digest', '')[:12]:<12} "
        f"{lineage.get('seed', ''):>5}  {origin}"
    )


def wrapped(head: str, text: str, *, width: int = SHOW_WIDTH) -> list[str]:
    """`head` then `text` wrapped within `width` columns, the next lines indented by
    HISTORY_INDENT; every word of `text` is kept, one longer than a line on a line of its own."""
    lines = textwrap.wrap(
        text,
        width=width,
        initial_indent=head,
        subsequent_indent=" " * HISTORY_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return lines or [head.rstrip()]


# --- reproduce ---------------------------------------------------------------------------------


# --- batch scoring, serving, monitoring --------------------------------------------------------


# --- init, data validation ---------------------------------------------------------------------
