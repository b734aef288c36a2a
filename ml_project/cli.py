"""`ml-project`: parse, load settings, call the pipeline, map known errors to exit codes."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import click

from ml_project import __version__
from ml_project.errors import ConfigError, GateFailedError, ProjectError
from ml_project.settings import ENVS, load_settings, project_root

EXIT_CODES_HELP = """\b
Exit codes: 0 ok, 1 unexpected error, 2 bad usage or config, 3 bad data,
4 dirty work tree, 5 quality gate failed, 6 not reproduced, 7 drift detected,
8 registry error."""


def handle_errors(command):
    """Known errors become one paragraph on stderr and their exit code; no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ProjectError as exc:
            click.echo(f"ml-project: {exc.label}: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def env_option(command):
    return click.option(
        "--env",
        "env",
        required=True,
        type=click.Choice(ENVS),
        help="Environment overlay: environments/<env>.yaml over base.yaml.",
    )(command)


def settings_options(command):
    """--seed, --set, --flights, --weather: the CLI layer of the settings."""
    for option in reversed(
        [
            click.option("--seed", type=click.IntRange(0, 2**32 - 1), help="Root seed."),
            click.option(
                "--set",
                "overrides",
                multiple=True,
                metavar="KEY.PATH=VALUE",
                help="Override one setting, e.g. --set model.max_iter=50 (repeatable).",
            ),
            click.option(
                "--flights",
                type=click.Path(path_type=Path),
                help="Flights file (CSV, zipped CSV, Parquet) instead of the configured one.",
            ),
            click.option(
                "--weather",
                type=click.Path(path_type=Path),
                help="Hourly weather file instead of the configured one.",
            ),
        ]
    ):
        command = option(command)
    return command


def resolve_settings(env, *, seed, overrides, flights, weather):
    """Settings for `env` with the CLI's overrides applied last."""
    paths = {"flights": flights, "weather": weather}
    extra = tuple(f"data.{key}={json.dumps(str(p.resolve()))}" for key, p in paths.items() if p)
    return load_settings(env, overrides=(*overrides, *extra), seed=seed)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ml-project")
def cli():
    """Train, check and promote the flight-delay model in dev, staging and prod.

    \b
    Example:
      ml-project train --env dev
    """
    from ml_project.tracking import quiet_environment

    quiet_environment()


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@settings_options
@click.option("--allow-dirty", is_flag=True, help="Train from uncommitted code (recorded).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object of the results.")
@handle_errors
def train(env, seed, overrides, flights, weather, allow_dirty, as_json):
    """Train, evaluate and register a model version for ENV.

    \b
    Examples:
      ml-project train --env dev
      ml-project train --env staging --seed 7 --set model.max_iter=50
      ml-project train --env prod --flights data/flights.parquet --weather data/weather.csv
    """
    from ml_project.pipeline import run_training

    settings = resolve_settings(
        env, seed=seed, overrides=overrides, flights=flights, weather=weather
    )
    with report_on_gate_failure(format_train_summary, as_json):
        result = run_training(settings, root=project_root(), allow_dirty=allow_dirty)
    click.echo(format_train_summary(result.as_dict()))
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))


@contextlib.contextmanager
def report_on_gate_failure(formatter, as_json: bool):
    """A refused model still gets its summary (and JSON) before the gate's exit code."""
    try:
        yield
    except GateFailedError as exc:
        if exc.result is not None:
            click.echo(formatter(exc.result.as_dict()))
            if as_json:
                click.echo(json.dumps(exc.result.as_dict(), sort_keys=True))
        raise


def format_train_summary(result: dict) -> str:
    """A few lines a person reads after training."""
    metrics = result["metrics"]
    rows = result["rows"]
    lineage = result["lineage"]
    dirty = " (dirty tree)" if lineage.get("git.dirty") == "true" else ""
    return "\n".join(
        [
            f"Trained {result['model_name']} version {result['model_version']} "
            f"in env {result['env']}.",
            f"  run id     {result['run_id']}",
            f"  model uri  {result['model_uri']}",
            f"  rows       {rows['train']} train, {rows['test']} test "
            f"(of {rows['labelled']} labelled; {rows['unlabelled_dropped']} unlabelled dropped)",
            "  test       "
            + ", ".join(
                f"{name} {metrics[name]:.4f}"
                for name in ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
            ),
            f"  commit     {lineage.get('git.commit', '')[:12] or 'unknown'}{dirty}",
            f"  data       {lineage.get('data.digest', '')[:12]}",
            f"  store      {result['tracking_uri']}",
            *format_gate(result.get("gate") or {}),
        ]
    )


def format_gate(gate: dict) -> list[str]:
    """The gate's verdict and what it did to the aliases, for a summary."""
    if not gate:
        return []
    if gate.get("promoted"):
        moved = f"champion {gate.get('champion_before') or 'none'} -> {gate['champion_after']}"
    else:
        moved = f"no alias; champion stays {gate.get('champion_after') or 'unset'}"
    lines = [f"  gate       {gate['status']} ({moved})"]
    lines += [f"             - {reason}" for reason in gate.get("reasons", [])]
    return lines


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--env", "env", type=click.Choice(ENVS), help="Force `champion` in this env.")
@click.option(
    "--version", "version", type=click.IntRange(1), required=True, help="The model version."
)
@click.option("--reason", help="Why (recorded; required for a forced promotion).")
@click.option("--from-env", type=click.Choice(ENVS), help="Hybrid: copy from this env's model.")
@click.option("--to-env", type=click.Choice(ENVS), help="Hybrid: into this env's model, gated.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a setting of the target env, e.g. --set gate.tolerance=0.01.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object of the results.")
@handle_errors
def promote(env, version, reason, from_env, to_env, overrides, as_json):
    """Move `champion` by hand, or copy a version into another env and gate it there.

    \b
    Forced (no gate; the reason, actor and commit go into the history):
      ml-project promote --env prod --version 12 --reason "hotfix: v13 mislabels JFK"
    Hybrid (deploy model): copy a staging version into prod, then run the prod gate:
      ml-project promote --from-env staging --to-env prod --version 7
    """
    from ml_project import promotion

    if env and not (from_env or to_env):
        if overrides:
            raise ConfigError("--set applies to the hybrid promotion (--from-env/--to-env).")
        settings = resolve_settings(env, seed=None, overrides=(), flights=None, weather=None)
        result = promotion.promote_version(
            settings, version=str(version), reason=reason, root=project_root()
        )
    elif from_env and to_env and not env:
        source = resolve_settings(from_env, seed=None, overrides=(), flights=None, weather=None)
        target = resolve_settings(
            to_env, seed=None, overrides=overrides, flights=None, weather=None
        )
        with report_on_gate_failure(format_promotion, as_json):
            result = promotion.promote_copy(
                source, target, version=str(version), root=project_root(), reason=reason or ""
            )
    else:
        raise ConfigError(
            "promote takes either --env ENV --version N --reason TEXT (forced), or "
            "--from-env ENV --to-env ENV --version N (hybrid copy, gated)."
        )
    click.echo(format_promotion(result.as_dict()))
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@click.option("--reason", default="rollback", show_default=True, help="Why (recorded).")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object of the results.")
@handle_errors
def rollback(env, reason, as_json):
    """Move `champion` back to the champion before the current one.

    \b
    Example:
      ml-project rollback --env prod --reason "v13 doubles the late alerts"
    """
    from ml_project import promotion

    settings = resolve_settings(env, seed=None, overrides=(), flights=None, weather=None)
    result = promotion.rollback(settings, root=project_root(), reason=reason)
    click.echo(format_promotion(result.as_dict()))
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))


def format_promotion(result: dict) -> str:
    what = {"forced": "Forced", "rollback": "Rolled back", "copy": "Copied and gated"}
    head = f"{what.get(result['action'], result['action'])}: {result['model_name']} "
    if result["action"] == "copy":
        source = result["source"]
        head += (
            f"version {result['version']} (from {source['model_name']} version {source['version']})"
        )
    else:
        head += f"version {result['version']}"
    lines = [
        head,
        f"  champion   {result['champion_before'] or 'none'} -> "
        f"{result['champion_after'] or 'none'}",
        f"  status     validation_status={result['validation_status']}",
        f"  reason     {result['reason']}",
        f"  store      {result['tracking_uri']}",
    ]
    if result["action"] == "forced" and result["validation_status"] != "passed":
        lines.append("  warning    this version did not pass the gate; the move is recorded")
    return "\n".join(lines + format_gate(result.get("gate") or {}))


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@click.option("--history", "history_lines", default=10, show_default=True, help="History lines.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@handle_errors
def show(env, history_lines, as_json):
    """The env's registered model: versions, aliases, gate results, lineage and history.

    \b
    Examples:
      ml-project show --env prod
      ml-project show --env dev --json
    """
    from ml_project import promotion

    settings = resolve_settings(env, seed=None, overrides=(), flights=None, weather=None)
    described = promotion.describe(settings, root=project_root())
    if as_json:
        click.echo(json.dumps(described, sort_keys=True))
    else:
        click.echo(format_show(described, history_lines=history_lines))


def format_show(described: dict, *, history_lines: int) -> str:
    aliases = ", ".join(f"{k} -> {v}" for k, v in described["aliases"].items()) or "none"
    lines = [
        f"{described['model_name']} (env {described['env']}, store {described['tracking_uri']})",
        f"  aliases    {aliases}",
        "",
        f"  {'version':>7}  {'aliases':<19} {'gate':<8} {'roc_auc':>7} {'pr_auc':>7} "
        f"{'vs':>4}  {'commit':<12} {'data':<12} {'seed':>5}  from",
    ]
    for item in described["versions"]:
        lineage, metrics = item["lineage"], item["metrics"]
        copied = item["copied_from"]
        origin = (
            f"{copied.get('copied_from.model')} v{copied.get('copied_from.version')}"
            if copied
            else f"run {lineage.get('run_id', '')[:8]}"
        )
        lines.append(
            f"  {item['version']:>7}  {','.join(item['aliases']) or '-':<19} "
            f"{item['validation_status']:<8} {_metric(metrics.get('roc_auc')):>7} "
            f"{_metric(metrics.get('pr_auc')):>7} {item['compared_with'] or '-':>4}  "
            f"{lineage.get('git.commit', '')[:12]:<12} {lineage.get('data.digest', '')[:12]:<12} "
            f"{lineage.get('seed', ''):>5}  {origin}"
        )
    history = described["history"]
    shown = history[-history_lines:] if history_lines > 0 else []
    lines += ["", f"  history ({len(shown)} of {len(history)} moves, oldest first)"]
    for entry in shown:
        lines.append(
            f"  {entry.get('time', '')[:19]}  {entry.get('alias', ''):<10} "
            f"{entry.get('from_version') or '-':>4} -> {entry.get('to_version') or '-':<4} "
            f"{entry.get('action', ''):<10} {entry.get('actor', '')}@"
            f"{(entry.get('commit') or '')[:7]}  {entry.get('reason', '')[:100]}"
        )
    return "\n".join(lines)


def _metric(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> None:
    """Entry point of `ml-project` and `python -m ml_project`."""
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # raised before a command's own handler (e.g. in a callback)
        click.echo(f"ml-project: {exc.label}: {exc}", err=True)
        sys.exit(exc.exit_code)
