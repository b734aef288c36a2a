"""Views: every command's typed result rendered to text, Markdown or JSON, and nothing else.

A result is a frozen dataclass whose field names are its JSON keys; `plain` turns one (and the
dataclasses, paths and numpy numbers inside it) into JSON-ready values, so no result writes its
own `as_dict`. A field that must not be in the JSON is declared with `metadata={"json": False}`.
"""

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ml_project import comparisons as cmp
from ml_project.drift import TOP_FEATURES, report_data, shown
from ml_project.results import plain, to_json
from ml_project.settings import PROBLEMS_FOLDER, PROJECT_SETTINGS

if TYPE_CHECKING:  # the results' modules import MLflow: not for a command that only renders
    from ml_project.monitor import MonitorResult
    from ml_project.pipeline import TrainResult
    from ml_project.predict import ScoringSummary
    from ml_project.promotion import Description, GateOutcome, PromotionResult, VersionView
    from ml_project.recovery import Settled
    from ml_project.scaffold import InitRequest, Plan
    from ml_project.validation import DataValidation

json_option = click.option(
    "--json", "as_json", is_flag=True, help="End with one JSON object of the results."
)


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
    before, after = result.champion_before or "none", result.champion_after or "none"
    lines = [
        head,
        f"  champion   {before} -> {after}" if before != after else f"  champion   {after} (kept)",
        f"  status     validation_status={result.validation_status}",
        f"  reason     {result.reason}",
        f"  store      {result.tracking_uri}",
    ]
    if result.action == "forced" and result.validation_status != "passed":
        lines.append("  warning    this version did not pass the gate; the move is recorded")
    return "\n".join(lines + gate_lines(result.gate))


# Where `show` says each version's model card is (model_card.py).
CARD_WHERE = (
    "each version's description on its MLflow UI page, and model_card/version-<n>.html of "
    "the run that judged it"
)


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
    if described.versions:
        lines += wrapped(f"  {'cards':<10} ", CARD_WHERE)
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


def wrapped(head: str, text: str) -> list[str]:
    """`head` then `text` wrapped within SHOW_WIDTH columns, the next lines indented by
    HISTORY_INDENT; every word of `text` is kept, one longer than a line on a line of its own."""
    lines = textwrap.wrap(
        text,
        width=SHOW_WIDTH,
        initial_indent=head,
        subsequent_indent=" " * HISTORY_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return lines or [head.rstrip()]


def settled_text(result: "Settled") -> str:
    """What `ml-project settle` ended, for a person."""
    if not result.settled:
        return (
            f"Nothing to settle in {result.model_name} (env {result.env}): no version waits for "
            "a verdict its run can no longer give, no run of a dead process reads RUNNING."
        )
    lines = [f"Settled in {result.model_name} (env {result.env}):"]
    return "\n".join(lines + [f"  {line}" for line in result.settled])


# --- reproduce ---------------------------------------------------------------------------------

_HEADLINES = {
    cmp.IDENTICAL: "identical",
    cmp.WITHIN_TOLERANCE: "equal within tolerance",
    cmp.DIFFERENT: "DIFFERENT",
    cmp.DATA_CHANGED: "DATA CHANGED",
    cmp.ENVIRONMENT_DIFFERS: "ENVIRONMENT DIFFERS (--strict)",
}
_STATUSES = {
    cmp.IDENTICAL: "identical",
    cmp.DIFFERENT: "DIFFERENT",
    cmp.NOT_RECORDED: "not recorded at training: not compared",
}


def reproduction_data(value: Any) -> Any:
    """`reproduce --json` and its run's report.json: NaN stays NaN (a metric undefined on the
    held-out rows, as it always printed)."""
    return plain(value, keep_nan=True)


def failure_message(result: cmp.ReproductionResult) -> str:
    """One paragraph for stderr when the target was not reproduced."""
    what, commit = _what(result), result.commit[:12]
    sources = result.step("sources")
    if result.verdict == cmp.DATA_CHANGED:
        changed = [
            f"{name} sha256 {f.recorded.sha256[:12]} at training, "
            f"{(f.today.sha256 or '?')[:12]} today"
            for name, f in (sources.files if isinstance(sources, cmp.SourcesStep) else {}).items()
            if not f.sha256_equal and f.recorded.sha256
        ]
        detail = f" ({'; '.join(changed)})" if changed else ""
        reason = result.error or "the rows it was trained on differ from today's data"
        return (
            f"data changed: {what} cannot be rebuilt from commit {commit}: {reason}{detail}. "
            "Nothing was retrained; the report above compares the recorded digests, row counts "
            "and schema with today's."
        )
    if result.verdict == cmp.ENVIRONMENT_DIFFERS:
        return (
            f"{what}: the running software differs from the one recorded at training "
            f"({'; '.join(result.warnings)}). Install the recorded requirements.lock "
            "(or use the Docker image) or drop --strict to rebuild anyway."
        )
    tolerance = f" beyond --tolerance {result.tolerance}" if result.tolerance is not None else ""
    error = f" ({result.error})" if result.error else ""
    where = (
        " The old code's traceback is reproduction/traceback.txt of the reproduction run."
        if result.traceback
        else ""
    )
    return (
        f"{what} rebuilt from commit {commit} differs{tolerance}: {result.first_difference}"
        f"{error}. The report above says what differs, step by step.{where}"
    )


def format_reproduction(result: cmp.ReproductionResult) -> str:
    """The verdict, then one line (or a few) per step, then warnings and where it was logged."""
    headline = _HEADLINES.get(result.verdict, result.verdict)
    first = f" ({result.first_difference})" if result.first_difference else ""
    lines = [
        f"Reproduction of {_what(result)} from commit {result.commit[:12]}: {headline}{first}.",
        f"  {'original run':<12} {result.run_id}",
    ]
    for step in result.steps:
        for i, text in enumerate(describe_step(step)):
            lines.append(f"  {step.step if i == 0 else '':<12} {text}")
    lines += [f"  warning: {warning}" for warning in result.warnings]
    if result.error:
        lines.append(f"  error: {result.error.splitlines()[0]}")
    lines.append(
        f"  {'logged':<12} reproduction run {result.reproduction_run_id} ({result.seconds:.1f} s)"
    )
    return "\n".join(lines)


def _short(value: object) -> str:
    return str(value)[:12] if value else "(not recorded)"


def _what(result: cmp.ReproductionResult) -> str:
    if result.model_version:
        return f"{result.model_name} version {result.model_version}"
    return f"the model of run {result.run_id}"


def _pairs(
    pairs: Mapping[str, cmp.Pair], label: str, show: Callable[[object], object] = str
) -> list[str]:
    """`label key  recorded at training, rebuilt now`, marked where they differ."""
    return [
        f"  {f'{label}{key}':<23} {show(pair.recorded)} at training, {show(pair.rebuilt)} now"
        + ("" if pair.recorded == pair.rebuilt else "  <- differs")
        for key, pair in pairs.items()
    ]


def describe_step(step: cmp.Step) -> list[str]:
    """A step's lines of the summary (the first beside its name)."""
    status = _STATUSES.get(step.status, step.status)
    match step:
        case cmp.EnvironmentStep():
            return [_describe_environment(step)]
        case cmp.CodeStep():
            seconds = step.seconds or {}
            timing = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in seconds.items() if v is not None)
            return [f"commit {step.commit[:12]} ran from a temporary worktree ({timing})"]
        case cmp.ConfigStep():
            rebuilt, recorded = step.rebuilt, step.recorded
            if step.status == cmp.IDENTICAL:
                return [f"identical (hash {_short(recorded['hash'])}, seed {recorded['seed']})"]
            return [
                f"DIFFERENT: hash {_short(recorded['hash'])} recorded, "
                f"{_short(rebuilt.get('hash'))} rebuilt; seed {recorded['seed']} recorded, "
                f"{rebuilt.get('seed')} rebuilt"
            ]
        case cmp.SourcesStep():
            return [line for name, f in step.files.items() for line in _describe_table(name, f)]
        case cmp.DataStep():
            return _describe_data(step, status)
        case cmp.FeaturesStep():
            return [_describe_features(step, status)]
        case cmp.ModelStep():
            return [_describe_model(step, status)]
        case cmp.PredictionsStep():
            diff = "unknown" if step.max_abs_diff is None else f"{step.max_abs_diff:.3g}"
            text = (
                f"{step.rows} evaluation rows, digest {_short(step.rebuilt)}, max abs diff {diff}"
            )
            if step.status == cmp.DIFFERENT:
                return [f"DIFFERENT: {text} (recorded digest {_short(step.recorded)})"]
            return [f"{status} ({text})"]
        case cmp.MetricsStep():
            return [_describe_metrics(step)]
    return []


def _describe_environment(step: cmp.EnvironmentStep) -> str:
    if step.status == cmp.IDENTICAL:
        lock = (
            ", and every pin of the recorded requirements.lock the project needs (its extras aside)"
            if step.lock_recorded
            else ""
        )
        return f"identical: python, CPU architecture and key packages as recorded{lock}"
    items = [f"{i.what} {i.recorded} -> {i.now}" for i in step.key_packages]
    lock = f"; {len(step.lock)} lock pin(s) differ" if step.lock else ""
    return f"DIFFERENT: {', '.join(items) or 'key packages as recorded'}{lock}"


def _describe_table(name: str, entry: cmp.TableFile) -> list[str]:
    then, today = entry.recorded, entry.today
    if entry.sha256_equal:
        return [f"{name}: identical (sha256 {_short(today.sha256)}) {today.path}"]
    lines = [
        f"{name}: CHANGED {today.path}",
        f"  sha256  {_short(then.sha256)} at training, {_short(today.sha256)} now",
    ]
    if then.path and then.path != today.path:
        lines.append(f"  path    {then.path} at training")
    if then.rows is not None or today.rows is not None:
        at_training = "not recorded" if then.rows is None else then.rows
        lines.append(f"  rows    {at_training} at training, {today.rows} now")
    changes = entry.schema_changes
    if changes is None:
        lines.append("  schema  not recorded at training")
    elif not (changes.added or changes.removed or changes.retyped):
        lines.append(f"  schema  same {len(then.schema or {})} columns and dtypes")
    else:
        retyped = [f"{c} {a} -> {b}" for c, (a, b) in changes.retyped.items()]
        parts = [
            f"added {', '.join(changes.added)}" if changes.added else "",
            f"removed {', '.join(changes.removed)}" if changes.removed else "",
            f"retyped {', '.join(retyped)}" if retyped else "",
        ]
        lines.append(f"  schema  {'; '.join(p for p in parts if p)}")
    return lines


def _describe_data(step: cmp.DataStep, status: str) -> list[str]:
    if step.status != cmp.DIFFERENT:
        train, test = step.rows.get("train"), step.rows.get("test")
        digest = _short(step.digests["digest"].rebuilt if "digest" in step.digests else None)
        used = (train.rebuilt if train else None), (test.rebuilt if test else None)
        return [f"{status} (digest {digest}; {used[0]} train, {used[1]} test rows)"]
    return [
        "CHANGED: the rows and columns used differ from the recorded ones",
        *_pairs(step.digests, "", _short),
        *_pairs(step.rows, "rows "),
    ]


def _describe_features(step: cmp.FeaturesStep, status: str) -> str:
    if step.status != cmp.DIFFERENT:
        return f"{status} (transformed train matrix digest {_short(step.rebuilt)})"
    columns = step.sample_columns_differ
    where = f"; columns differing in the sample: {', '.join(columns)}" if columns else ""
    return (
        f"DIFFERENT: digest {_short(step.recorded)} recorded, {_short(step.rebuilt)} rebuilt{where}"
    )


def _describe_model(step: cmp.ModelStep, status: str) -> str:
    against = f" against {step.registered_artifact}" if step.registered_artifact else ""
    if step.refused:
        return f"DIFFERENT: the registered files{against} were refused: {step.refused}"
    content = step.content
    if step.status != cmp.DIFFERENT:
        equal = "; parameters equal" if step.status == cmp.IDENTICAL else ""
        files = f"; {step.registered_files}" if step.registered_files else ""
        same = f"; skops content {_short(content.rebuilt)} as recorded" if content else ""
        return f"{status} (fitted state digest {_short(step.rebuilt)}{equal}{same}{against}{files})"
    if content and content.recorded != content.rebuilt and step.registered == step.rebuilt:
        return (
            f"DIFFERENT: skops content {_short(content.recorded)} recorded ({step.content_from}), "
            f"{_short(content.rebuilt)} rebuilt; fitted state equal"
        )
    params = step.params_differ or {}
    listed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in list(params.items())[:5])
    return (
        f"DIFFERENT: fitted state {_short(step.registered)} registered{against}, "
        f"{_short(step.rebuilt)} rebuilt; "
        + (f"parameters differ: {listed}" if params else "parameters equal, fitted values differ")
    )


def _describe_metrics(step: cmp.MetricsStep) -> str:
    values = step.values
    shown = [name for name in step.order or values if name in values]
    if step.status == cmp.IDENTICAL:
        return f"identical ({', '.join(f'{k} {values[k].rebuilt:.4f}' for k in shown)})"
    text = ", ".join(
        f"{k} {values[k].recorded:.6f} -> {values[k].rebuilt:.6f}"
        for k in shown
        if cmp.difference(values[k].recorded, values[k].rebuilt) > 0
    )
    return f"DIFFERENT: {text or 'not recorded'}"


# --- batch scoring, serving, monitoring --------------------------------------------------------


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


def summary_text(result: dict[str, Any], *, markdown: bool = False) -> str:
    """The worst features and every one that alerts, the score, live quality, repeated keys
    and the verdict, as text or Markdown (`result`: monitor_data)."""
    head = (
        f"Monitored {result['rows']} rows of {result['input']} with {result['model_name']} "
        f"version {result['model_version']} (env {result['env']}): {result['status'].upper()}"
    )
    columns = ("feature", "kind", "PSI", "nulls: training -> batch", "status")
    features = result["features"]
    picked = [features[at] for at in shown([row["status"] for row in features], top=TOP_FEATURES)]
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


def next_steps(plan: "Plan", request: "InitRequest") -> str:
    """What `init` prints: what it wrote and chose, then what to do next."""
    folder, features = f"{PROBLEMS_FOLDER}/{plan.name}", plan.features
    suites = [Path(path).stem for path in plan.files if "/expectations/" in path]
    lines = [
        f"Wrote {len(plan.files)} files under {folder}/: problem.py, environments/"
        f"{{base,dev,staging,prod}}.yaml, expectations/{{{','.join(suites)}}}.yaml",
        f"Features: categorical {list(features.categorical)}, numeric {list(features.numeric)}"
        f", datetime {list(features.datetime)}",
    ]
    listed = {
        "Joined in records()": {join.table: f"on {', '.join(join.on)}" for join in plan.joins},
        "Read from the key": {column: f"({why})" for column, why in features.offered.items()},
        "Left out": {column: f"({why})" for column, why in features.dropped.items()},
    }
    for head, items in listed.items():
        if items:
            lines.append(f"{head}: " + "; ".join(f"{item} {why}" for item, why in items.items()))
    if plan.time_column:
        lines.append(
            f"Held out: the newest rows by {plan.time_column} (split.time_column), not a hash "
            "of the key: the model is judged on a period it did not see"
        )
    if plan.ignored:
        lines.append(
            f"Not drift: {', '.join(plan.ignored)} (monitor.ignore): years, each new period "
            "brings a new one"
        )
    fractions = ", ".join(f"{env} {value:g}" for env, value in plan.fractions.items())
    lines += [f"Sample fractions: {fractions}", *(f"Warning: {w}" for w in plan.warnings)]
    if plan.previous_default != plan.name:
        was = f", was {plan.previous_default}" if plan.previous_default else ""
        lines.append(
            f"Default problem: {plan.name} (`problem:` in {PROJECT_SETTINGS}{was}); "
            "--problem NAME, or PROBLEM=NAME for make, chooses another."
        )
    steps = [f"Write records() in {folder}/problem.py (it joins the tables)."]
    if len(request.tables) == 1 or plan.joins:
        steps = []
    steps += [
        f"Review {folder}/ (each expectation says what was observed).",
        f"git add {folder} {PROJECT_SETTINGS}{' Dockerfile' if plan.image_changed else ''} && "
        "git commit   (a local data file: commit it, or "
        "list it in .gitignore; staging and prod refuse a dirty tree)",
        "ml-project train --env dev      (or: make train; committed first, the run records a "
        "commit that holds the problem, so `reproduce` can rebuild it)",
        "make train ENV=staging",
    ]
    lines += ["", "Next steps:", *(f"  {n}. {step}" for n, step in enumerate(steps, 1))]
    return "\n".join(lines)


def data_validated(result: "DataValidation") -> str:
    """What `validate-data` prints: every suite passed (ValidationReport.describe)."""
    lines = [f"Data validation passed in env {result.env}."]
    lines += [
        f"  {t.table}: {t.evaluated} expectations passed on {t.rows} rows ({t.source})"
        for t in result.tables
    ]
    return "\n".join(lines)
