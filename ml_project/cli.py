"""`ml-project`: parse, load settings, call the pipeline, map known errors to exit codes."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ml_project import __version__
from ml_project.errors import ConfigError, ProjectError
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
    result = run_training(settings, root=project_root(), allow_dirty=allow_dirty)
    click.echo(format_train_summary(result.as_dict()))
    if as_json:
        click.echo(json.dumps(result.as_dict(), sort_keys=True))


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
        ]
    )


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--env", type=click.Choice(ENVS), help="Env whose registered model --version is.")
@click.option("--version", "version", type=click.IntRange(min=1), help="Model version number.")
@click.option("--run-id", help="The training run instead of a version.")
@click.option(
    "--model-uri", help="models:/NAME/N or models:/NAME@ALIAS instead of --env/--version."
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    help="Accept predictions and metrics within this max abs difference (default: bitwise).",
)
@click.option("--strict", is_flag=True, help="Refuse when package versions differ from training.")
@click.option("--flights", type=click.Path(path_type=Path), help="Read a moved copy of the data.")
@click.option("--weather", type=click.Path(path_type=Path), help="Read a moved copy of weather.")
@click.option("--json", "as_json", is_flag=True, help="End with one JSON object of the report.")
@handle_errors
def reproduce(env, version, run_id, model_uri, tolerance, strict, flights, weather, as_json):
    """Rebuild a registered model version from its commit, config, seed and data, and compare.

    The recorded commit runs in a temporary git worktree (your tree is untouched); nothing is
    registered. Exit 0 only when identical, or within an explicit --tolerance; 6 otherwise
    (data changed: nothing is retrained).

    \b
    Examples:
      ml-project reproduce --env staging --version 3
      ml-project reproduce --model-uri models:/flights_delay_prod@champion --json
      ml-project reproduce --run-id 0123abcd... --tolerance 1e-9 --strict
    """
    from ml_project import reproduce as reproduction
    from ml_project.errors import NotReproducedError

    if sum(map(bool, (version, run_id, model_uri))) != 1 or bool(env) != bool(version):
        raise click.UsageError(
            "name one model: --env ENV --version N, --run-id ID, or --model-uri "
            "models:/NAME/N (or models:/NAME@ALIAS)."
        )
    name, number, alias = "", str(version or ""), ""
    if model_uri:
        name, number, alias = reproduction.parse_model_uri(model_uri)
    elif env:
        name = load_settings(env).tracking.model_name
    result = reproduction.reproduce_model(
        root=project_root(),
        model_name=name,
        version=number,
        alias=alias,
        run_id=run_id or "",
        tolerance=tolerance,
        strict=strict,
        flights=flights,
        weather=weather,
    ).as_dict()
    click.echo(reproduction.format_summary(result))
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    if not result["reproduced"]:
        raise NotReproducedError(reproduction.failure_message(result))


def main() -> None:
    """Entry point of `ml-project` and `python -m ml_project`."""
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # raised before a command's own handler (e.g. in a callback)
        click.echo(f"ml-project: {exc.label}: {exc}", err=True)
        sys.exit(exc.exit_code)
