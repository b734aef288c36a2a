"""A model card per registered version, written when the gate's verdict is known.

What the version predicts, the data it saw, its held-out metrics next to the feature-blind
model's and the champion's, the verdict with every check, the plots of its evaluation, its
lineage and the one command that rebuilds it. Rendered (pure: `CardFacts` in, text out) as
Markdown for the version's description, which the MLflow UI shows on the version's page
(MLflow keeps at most MAX_DESCRIPTION characters of it), and as a self-contained HTML page
(plots inlined) logged as the run's `model_card/version-<n>.html`. `write_card` is the edge:
it reads what the store holds, then writes both and the version tag `model_card`.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd
from mlflow.exceptions import MlflowException

from ml_project import drift, metrics, registry, tracking
from ml_project.gate import Verdict
from ml_project.settings import Settings
from ml_project.vocabulary import DATA_TABLES, EVALUATION_SKIPPED, lineage_of, run_of

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ml_project.evaluation import HeldOut

logger = logging.getLogger(__name__)

CARD_FOLDER = "model_card"
CARD_TAG = "model_card"  # version tag: runs:/<run>/model_card/version-<n>.html
MAX_DESCRIPTION = 5000  # characters MLflow's registry keeps of a version's description
PLOT_SUFFIX = ".png"  # the evaluation's plots, at the root of the run's artifacts


@dataclass(frozen=True)
class TimeRange:
    """The oldest and newest value of a time column in the train and the held-out rows
    (None: that side's rows do not hold the column)."""

    column: str
    train: tuple[str, str] | None
    held_out: tuple[str, str] | None


@dataclass(frozen=True)
class Plot:
    path: str  # the artifact's path in the run
    png: bytes


@dataclass(frozen=True, kw_only=True)
class CardFacts:
    """Everything a card says about one version, as the store and the gate know it."""

    model_name: str
    version: str
    env: str
    problem: str
    task: str
    label: str
    run_id: str  # the run that judged it: its evaluation plots and this card
    experiment_id: str
    verdict: Verdict
    baseline_metrics: Mapping[str, float]
    metric_names: Sequence[str]  # the task's metrics, then the problem's own, in order
    held_out_rows: int
    tags: Mapping[str, str]  # the version's lineage: its training run's tags, its own on top
    times: Sequence[TimeRange] = ()
    plots: Sequence[Plot] = ()

    @property
    def card_path(self) -> str:
        return f"{CARD_FOLDER}/version-{self.version}.html"

    @property
    def rebuild(self) -> str:
        return f"ml-project reproduce --model-uri models:/{self.model_name}/{self.version}"


@dataclass(frozen=True)
class Section:
    """One part of a card. Text between backticks is code; `table`'s first row is its head."""

    title: str
    lines: tuple[str, ...] = ()
    table: tuple[tuple[str, ...], ...] = ()
    items: tuple[str, ...] = ()
    code: str = ""
    plots: tuple[str, ...] = ()  # artifact paths


# --- what a card says (pure) ------------------------------------------------------------------


def verdict_word(facts: CardFacts) -> str:
    return "passed" if facts.verdict.passed else "refused"


def headline(facts: CardFacts) -> str:
    verdict = facts.verdict
    if verdict.passed:
        fate = (
            "passed the gate: it may become `champion` (its aliases in the registry say if it did)"
        )
    else:
        fate = "was refused by the gate: it holds no alias and never serves"
    return (
        f"Version {facts.version} of `{facts.model_name}` (env `{facts.env}`) predicts "
        f"`{facts.label}`, a {facts.task} task of problem `{facts.problem}`. It {fate}."
    )


def sections(facts: CardFacts) -> list[Section]:
    """The card's parts, in the order a reviewer reads them."""
    return [
        Section("Rebuild", lines=("The one command that rebuilds it and compares:",),
                code=facts.rebuild),
        data_section(facts),
        metrics_section(facts),
        verdict_section(facts),
        plots_section(facts),
        lineage_section(facts),
    ]  # fmt: skip


def sources(tags: Mapping[str, str]) -> list[tuple[str, ...]]:
    """(table, file, rows, sha256) of each table the training read, from its run's tags."""
    names = [name for name in tags.get(DATA_TABLES, "").split(",") if name]
    return [
        (
            f"`{name}`",
            f"`{tags.get(f'data.table.{name}.path', '?')}`",
            tags.get(f"data.table.{name}.rows", "?"),
            f"`{tags.get(f'data.table.{name}.sha256', '?')[:16]}`",
        )
        for name in names
    ]


def data_section(facts: CardFacts) -> Section:
    tags, seen = facts.tags, lineage_of(facts.tags)
    split = "a hash of the key columns"
    if seen.split_kind == "time":
        split = (
            f"time: the newest rows by `{seen.split_column or '?'}` held out, "
            f"from {seen.split_cutoff or '?'}"
        )
    lines = [
        f"{tags.get('data.rows_train', '?')} train rows; {facts.held_out_rows} held-out rows "
        f"judged by the gate. Split: {split}.",
        f"Data digest `{(seen.data_digest or '?')[:16]}`.",
    ]
    for time in facts.times:
        parts = [
            f"{side} {span[0]} to {span[1]}"
            for side, span in (("train", time.train), ("held-out", time.held_out))
            if span is not None
        ]
        lines.append(f"Time range of `{time.column}`: " + ("; ".join(parts) or "unknown") + ".")
    head = ("table", "file", "rows", "sha256")
    return Section("Data it saw", lines=tuple(lines), table=(head, *sources(tags)))


def number(value: float | None) -> str:
    """A metric as the card shows it: "-" when absent, NaN when undefined on these rows."""
    if value is None:
        return "-"
    return "NaN" if value != value else f"{value:.4f}"


def metrics_section(facts: CardFacts) -> Section:
    verdict = facts.verdict
    comparison = verdict.comparison
    compared = comparison is not None and comparison.error is None
    head = ["metric", "this version", "feature-blind model"]
    lines = [f"On the {facts.held_out_rows} held-out rows; no training row among them."]
    if comparison is not None and compared:
        head += [f"champion v{comparison.version}", "this version there"]
        lines.append(
            f"The champion and this version side by side on the same {comparison.rows} "
            "held-out rows neither trained on."
        )
    elif comparison is not None:
        lines.append(f"Champion version {comparison.version} not compared: {comparison.error}")
    else:
        lines.append("No champion to compare with.")
    rows = [tuple(head)]
    for name in [name for name in facts.metric_names if name in verdict.metrics]:
        shown = f"`{name}` (primary)" if name == verdict.primary_metric else f"`{name}`"
        row = [shown, number(verdict.metrics.get(name)), number(facts.baseline_metrics.get(name))]
        if comparison is not None and compared:
            row += [number(comparison.champion.get(name)), number(comparison.challenger.get(name))]
        rows.append(tuple(row))
    return Section("Held-out metrics", lines=tuple(lines), table=tuple(rows))


def verdict_section(facts: CardFacts) -> Section:
    verdict = facts.verdict
    items = tuple(
        f"{'passed' if check.passed else 'FAILED'} `{check.name}`: {check.message}"
        for check in verdict.checks
    )
    why = "Every check passed" if verdict.passed else "Failed: " + "; ".join(verdict.reasons)
    return Section(f"Gate: {verdict_word(facts)}", lines=(why + ".",), items=items)


def plots_section(facts: CardFacts) -> Section:
    if facts.plots:
        return Section(
            "Plots",
            lines=("MLflow's evaluation of this version on the held-out rows (the gate run's):",),
            plots=tuple(plot.path for plot in facts.plots),
        )
    skipped = facts.tags.get(EVALUATION_SKIPPED)
    why = f"the evaluation was skipped: {skipped}" if skipped else "the evaluation drew none"
    return Section("Plots", lines=(f"No plots: {why}.",))


def lineage_section(facts: CardFacts) -> Section:
    tags, seen = facts.tags, lineage_of(facts.tags)
    rows = [
        ("commit", f"`{seen.commit or 'unknown'}`"),
        ("dirty tree", "yes: uncommitted changes are not in the commit" if seen.dirty else "no"),
        ("git tag, branch", f"{seen.git_tag or '-'}, {seen.branch or '-'}"),
        ("training run", f"`{run_of(tags, facts.run_id)}`"),
        ("gate run", f"`{facts.run_id}`"),
        ("config", f"hash `{(seen.config_hash or '?')[:16]}`, `config/settings.yaml` of the run"),
        ("seed", seen.seed or "?"),
    ]
    copied = {key: value for key, value in tags.items() if key.startswith("copied_from.")}
    if copied:
        rows.append(
            (
                "copied from",
                f"`{copied.get('copied_from.model')}` v{copied.get('copied_from.version')}",
            )
        )
    return Section("Lineage", table=(("what", "value"), *rows))


# MLflow's UI lists a version's tags in a small box sorted by key, character by character:
# capitalised keys come before every lower-case one, so these four are what a reviewer sees first.
REVIEW_TAGS = ("Commit", "Data", "Rebuild", "Verdict")


def review_tags(facts: CardFacts) -> dict[str, str]:
    """The few tags a reviewer needs first: the verdict and its primary metric, the code, the
    data and the command that rebuilds the version (the machine-read tags stay as they are)."""
    verdict, seen = facts.verdict, lineage_of(facts.tags)
    primary = verdict.primary_metric
    judged = f"{verdict_word(facts)}: {primary} {number(verdict.metrics.get(primary))}"
    compared = verdict.comparison
    if compared is not None and compared.error is None:
        judged += f", champion v{compared.version} {number(compared.champion.get(primary))}"
    commit = (seen.commit or "unknown")[:12]
    if seen.git_tag:
        commit += f" ({seen.git_tag})"
    if seen.dirty:
        commit += ", dirty tree"
    data = (
        f"digest {(seen.data_digest or '?')[:12]}, {facts.tags.get('data.rows_train', '?')} "
        f"train and {facts.held_out_rows} held-out rows"
    )
    values = (commit, data, facts.rebuild, judged)
    return dict(zip(REVIEW_TAGS, values, strict=True))


# --- Markdown (the version's description) -----------------------------------------------------

MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]#|~])")


def md_text(text: str) -> str:
    """`text` for Markdown: code between backticks kept, the rest escaped."""
    parts = text.split("`")
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"`{part.replace('|', '/')}`")
        else:
            part = html.escape(part, quote=False)
            out.append(MARKDOWN_SPECIAL.sub(r"\\\1", part))
    return "".join(out)


def artifact_link(run_id: str, path: str) -> str:
    """The UI server's URL of a run's artifact, relative to the UI's page."""
    return f"get-artifact?path={quote(path)}&run_uuid={quote(run_id)}"


def md_section(section: Section, run_id: str) -> list[str]:
    lines = [f"#### {md_text(section.title)}", ""]
    lines += [md_text(line) + "  " for line in section.lines]
    if section.code:
        lines += ["```", section.code, "```"]
    if section.table:
        head, *body = section.table
        lines += ["", "| " + " | ".join(md_text(cell) for cell in head) + " |"]
        lines.append("|" + "---|" * len(head))
        lines += ["| " + " | ".join(md_text(cell) for cell in row) + " |" for row in body]
    lines += [f"- {md_text(item)}" for item in section.items]
    # links, not images: MLflow's sanitizer drops an image's size, and full-size plots overflow
    # the version's page (the HTML card inlines them)
    lines += [f"- [{md_text(path)}]({artifact_link(run_id, path)})" for path in section.plots]
    return [*lines, ""]


def markdown(facts: CardFacts, *, limit: int = MAX_DESCRIPTION) -> str:
    """The card as the version's description, at most `limit` characters: a longer one is cut
    at a line, and says where the whole card is."""
    head = [f"### Model card: {verdict_word(facts)}", "", md_text(headline(facts)), ""]
    body = [line for section in sections(facts) for line in md_section(section, facts.run_id)]
    page = f"#/experiments/{facts.experiment_id}/runs/{facts.run_id}/artifacts/{facts.card_path}"
    tail = f"The whole card, plots inlined: [{facts.card_path}]({page}) of run `{facts.run_id}`."
    text = "\n".join([*head, *body, tail])
    if len(text) <= limit:
        return text
    note = f"(cut at the {limit} characters MLflow keeps) {tail}"
    kept: list[str] = []
    size = sum(len(line) + 1 for line in head) + len(note)
    for line in body:
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*head, *kept, "", note])


# --- HTML (the run's artifact, self-contained) ------------------------------------------------

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;"
    "color:#1a1a1a}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
    "padding:.25em .6em;text-align:left}code,pre{background:#f4f4f4;padding:0 .2em}"
    "pre{padding:.6em}img{max-width:100%;border:1px solid #eee;margin:.5em 0}"
    ".passed{color:#0a6b2d}.refused,.FAILED{color:#b00020}"
)


def html_text(text: str) -> str:
    """`text` for HTML: between backticks as <code>, everything escaped."""
    parts = text.split("`")
    return "".join(
        f"<code>{html.escape(part)}</code>" if index % 2 else html.escape(part)
        for index, part in enumerate(parts)
    )


def html_section(section: Section, plots: Mapping[str, bytes]) -> list[str]:
    out = [f"<h2>{html_text(section.title)}</h2>"]
    out += [f"<p>{html_text(line)}</p>" for line in section.lines]
    if section.code:
        out.append(f"<pre>{html.escape(section.code)}</pre>")
    if section.table:
        head, *body = section.table
        out.append("<table><tr>" + "".join(f"<th>{html_text(c)}</th>" for c in head) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in row) + "</tr>" for row in body]
        out.append("</table>")
    if section.items:
        out.append("<ul>")
        for item in section.items:
            word = item.split(" ", 1)[0]
            out.append(f'<li class="{html.escape(word)}">{html_text(item)}</li>')
        out.append("</ul>")
    for path in section.plots:
        data = base64.b64encode(plots[path]).decode("ascii")
        out.append(f'<figure><img alt="{html.escape(path)}" src="data:image/png;base64,{data}">')
        out.append(f"<figcaption>{html.escape(path)}</figcaption></figure>")
    return out


def html_page(facts: CardFacts) -> str:
    """The card as one HTML page with no outside reference: styles and plots inlined."""
    title = f"Model card: {facts.model_name} version {facts.version}"
    plots = {plot.path: plot.png for plot in facts.plots}
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append(f'<p class="{verdict_word(facts)}">{html_text(headline(facts))}</p>')
    for section in sections(facts):
        body += html_section(section, plots)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def time_ranges(
    columns: Sequence[str], held_out: pd.DataFrame, profile: Mapping[str, Any]
) -> list[TimeRange]:
    """Each time column's range: the train rows' from the training's reference profile (its
    time features), the held-out rows' from the rows themselves."""
    features = profile.get("features", {})
    ranges = []
    for column in columns:
        train = None
        known = features.get(column, {})
        if known.get("kind") == "time" and known.get("min") is not None:
            stamps = bool(known.get("timestamps"))
            train = tuple(drift.shown_time(known[end], timestamps=stamps) for end in ("min", "max"))
        held = None
        if column in held_out.columns:
            seen = drift.time_profile(held_out[column].to_numpy())
            if seen["min"] is not None:
                stamps = bool(seen["timestamps"])
                held = tuple(
                    drift.shown_time(seen[end], timestamps=stamps) for end in ("min", "max")
                )
        ranges.append(TimeRange(column, train, held))  # type: ignore[arg-type]
    return ranges


# --- the edge: read what the store holds, write the card --------------------------------------


def time_columns(settings: Settings) -> list[str]:
    """The problem's time columns: its timestamp features and its split's time column."""
    columns = list(settings.features.datetime)
    split = settings.split.time_column
    return columns + [split] if split and split not in columns else columns


def read_plots(client: MlflowClient, run_id: str, folder: Path) -> list[Plot]:
    """The evaluation's plots the run holds (PNG files at the root of its artifacts)."""
    found = tracking.retry_locked(client.list_artifacts, run_id)
    paths = sorted(item.path for item in found if item.path.endswith(PLOT_SUFFIX))
    return [
        Plot(path, Path(client.download_artifacts(run_id, path, str(folder))).read_bytes())
        for path in paths
    ]


def read_profile(client: MlflowClient, run_id: str, folder: Path) -> dict[str, Any]:
    """The training's reference profile (drift.PROFILE_ARTIFACT), {} when the run has none."""
    try:
        local = client.download_artifacts(run_id, drift.PROFILE_ARTIFACT, str(folder))
    except (MlflowException, OSError):
        return {}
    data: dict[str, Any] = json.loads(Path(local).read_text())
    return data


def gather(
    client: MlflowClient, held: HeldOut, *, version: str, verdict: Verdict, run_id: str
) -> CardFacts:
    """What the card of `version`, judged by `run_id` on `held`'s rows, says."""
    settings = held.settings
    found = registry.get_version(client, settings.model_name, version)
    tags = registry.lineage_of(client, found)
    run = tracking.retry_locked(client.get_run, run_id)
    columns = time_columns(settings)
    with tempfile.TemporaryDirectory() as folder:
        plots = read_plots(client, run_id, Path(folder))
        trained_by = run_of(tags, found.run_id) or run_id
        profile = read_profile(client, trained_by, Path(folder)) if columns else {}
    return CardFacts(
        model_name=settings.model_name,
        version=str(version),
        env=settings.env,
        problem=settings.problem,
        task=settings.task,
        label=settings.data.label,
        run_id=run_id,
        experiment_id=run.info.experiment_id,
        verdict=verdict,
        baseline_metrics=held.baseline_metrics,
        metric_names=list(metrics.metrics_of(settings.task, held.problem.metrics)),
        held_out_rows=len(held.test),
        tags=tags,
        times=time_ranges(columns, held.test, profile),
        plots=plots,
    )


def write_card(
    client: MlflowClient, held: HeldOut, *, version: str, verdict: Verdict, run_id: str
) -> None:
    """Write `version`'s card: its description, the run's `model_card/version-<n>.html` and
    the version tag `model_card` pointing there. A store that refuses the writes leaves a
    warning: the verdict, already on the version's tags, stands."""
    name = held.settings.model_name
    try:
        facts = gather(client, held, version=version, verdict=verdict, run_id=run_id)
        description = markdown(facts)
        tracking.retry_locked(
            client.update_model_version, name, str(version), description=description
        )
        tracking.retry_locked(client.log_text, run_id, html_page(facts), facts.card_path)
        card = {CARD_TAG: f"runs:/{run_id}/{facts.card_path}", **review_tags(facts)}
        tracking.set_version_tags(client, name, str(version), card)
    except Exception as exc:  # noqa: BLE001 - any store's or rendering's error: the verdict stands
        logger.warning(
            "The model card of %s version %s was not written (%s); its verdict stands.",
            name,
            version,
            tracking.redact(str(exc)),
        )
