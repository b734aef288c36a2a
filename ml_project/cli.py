"""`ml-project`: parse, load settings, call the pipeline, map known errors to exit codes.

A command imports the module that does its work (pipeline, promotion, summary...) when it runs:
those import pandas, scikit-learn and MLflow, which `--help` or another command must not pay for.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from ml_project import __version__, errors, results, tracking, views
from ml_project.errors import (
    STOP_SIGNALS,
    ConfigError,
    DriftDetectedError,
    GateFailedError,
    Interrupted,
    NotReproducedError,
    ProjectError,
    StoreError,
)
from ml_project.paths import check_output_file, write_whole
from ml_project.settings import ENVS, Settings, load_settings, parse_tables, project_root
from ml_project.vocabulary import TASKS, Task

EXIT_CODES_HELP = """\b
Exit codes: 0 ok, 1 unexpected error, 2 bad usage or config, 3 bad data,
4 dirty work tree, 5 quality gate failed, 6 not reproduced, 7 drift detected,
8 registry error, 9 tracking store error, 10 training failed after its run started,
11 environment (paths, disk, Java), 130/143/129 interrupted (SIGINT/SIGTERM/SIGHUP)."""

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Known errors become one paragraph on stderr and their exit code; no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ProjectError as exc:
            fail(exc.label, str(exc), exc.exit_code)
        except Interrupted as exc:
            stopped(exc)
        except Exception as exc:
            if (
                stop := errors.received_stop()
            ) is not None:  # raised while unwinding from the signal
                stopped(stop)
            store = store_error(exc)
            if store is None:
                raise
            fail(store.label, str(store), store.exit_code)

    return wrapper


def stopped(exc: Interrupted) -> NoReturn:
    fail(exc.label, f"{exc.signal_name}: stopped; a run it started ends KILLED.", exc.exit_code)


def fail(label: str, message: str, code: int) -> NoReturn:
    click.echo(f"ml-project: {label}: {tracking.redact(message)}", err=True)
    sys.exit(code)


def store_error(exc: Exception) -> StoreError | None:
    """A failure of the tracking store met mid-command (locked or full database, a server
    that stopped answering) as a StoreError; None for anything else."""
    if not tracking.store_failed(exc):
        return None
    return StoreError(tracking.store_failure(tracking.tracking_uri(project_root()), exc))


_PENDING: list[int] = []  # a signal waiting for the store's transaction to finish
_STORE_MODULES = (  # a sqlite transaction may be open in these; an HTTP call is not deferred
    "sqlalchemy.",
    "sqlite3",
    "mlflow.store.db.",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


def _in_store_call(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_STORE_MODULES):
            return True
        frame = frame.f_back
    return False


def on_signal(number: int, frame: FrameType | None) -> None:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted: runs end KILLED, versions tagged, exit 128+N.

    Not inside a store transaction: an exception raised between a write and its commit leaves
    the sqlite database locked for the cleanup that follows. There the signal waits, checked
    again every 50 ms (SIGALRM), and is raised as soon as the transaction is over."""
    if number == signal.SIGALRM:
        if not _PENDING:
            return
        number = _PENDING[0]
    if _in_store_call(frame):
        if number not in _PENDING:
            _PENDING.append(number)
        signal.signal(signal.SIGALRM, on_signal)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return
    _PENDING.clear()
    stop = Interrupted(signal.Signals(number).name, number)
    errors.RECEIVED.append(stop)
    raise stop


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a settings option (--problem, --seed, --set, --table) for `resolve_settings`; one
    left out (or `--problem ''`, as MLproject passes it) leaves what an outer level gave."""
    if value not in (None, "", ()):
        ctx.meta[f"ml_project.{param.name}"] = value
    return value


def problem_option(command: F) -> F:
    return click.option(
        "--problem",
        metavar="NAME",
        expose_value=False,
        callback=_remember,
        help="The problem under problems/ (default: `problem:` in environments/base.yaml).",
    )(command)


def env_option(command: F) -> F:
    return problem_option(
        click.option(
            "--env",
            "env",
            required=True,
            type=click.Choice(ENVS),
            help="Environment overlay: environments/<env>.yaml and the problem's <env>.yaml.",
        )(command)
    )


def settings_options(command: F) -> F:
    """--seed, --set, --table: the CLI layer of the settings, applied by `resolve_settings`."""
    seed = click.option(
        "--seed",
        type=click.IntRange(0, 2**32 - 1),
        expose_value=False,
        callback=_remember,
        help="Root seed.",
    )
    table = click.option(
        "--table",
        "tables",
        multiple=True,
        metavar="NAME=PATH",
        expose_value=False,
        callback=_remember,
        help="Read table NAME from PATH (CSV, zipped CSV, Parquet) instead of the "
        "configured file (repeatable).",
    )
    return seed(overrides_option("params.max_iter=50")(table(command)))


def table_overrides(tables: tuple[str, ...]) -> tuple[str, ...]:
    """`--table NAME=PATH` -> `--set data.tables.NAME="<absolute path>"`."""
    return tuple(
        f"data.tables.{name}={json.dumps(str(path))}" for name, path in parse_tables(tables).items()
    )


def resolve_settings(
    env: str, *, overrides: tuple[str, ...] = (), tables: tuple[str, ...] = ()
) -> Settings:
    """Settings for `env` with the command's --problem, --seed, --set and --table (and these
    `overrides` and `tables`) applied last."""
    ctx = click.get_current_context(silent=True)
    given = ctx.find_root().meta if ctx else {}
    overrides = (*given.get("ml_project.overrides", ()), *overrides)
    tables = (*given.get("ml_project.tables", ()), *tables)
    return load_settings(
        env,
        problem=given.get("ml_project.problem"),
        overrides=(*overrides, *table_overrides(tables)),
        seed=given.get("ml_project.seed"),
    )


def overrides_option(example: str) -> Callable[[F], F]:
    """`--set KEY.PATH=VALUE` (repeatable), applied by `resolve_settings`."""
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        expose_value=False,
        callback=_remember,
        help=f"Override one setting, e.g. --set {example} (repeatable).",
    )


def model_uri_option(use: str) -> Callable[[F], F]:
    """`--model-uri`: the model to `use`, the env's champion by default."""
    return click.option(
        "--model-uri", help=f"Model to {use} (default: models:/<env model>@champion)."
    )


def chunk_rows_option(default: int, help: str) -> Callable[[F], F]:
    return click.option(
        "--chunk-rows", type=click.IntRange(1), default=default, show_default=True, help=help
    )


def path_option(
    flag: str, help: str, *, required: bool = True, text: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--input` / `--output`: a file path given to the command as `input_path` / `output_path`
    (a Path, or the text as typed with `text`)."""
    path = click.Path() if text else click.Path(path_type=Path)
    return click.option(flag, f"{flag[2:]}_path", required=required, type=path, help=help)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ml-project")
@click.option(
    "--quiet",
    is_flag=True,
    envvar="ML_PROJECT_QUIET",
    help="No progress lines (one a stage) on stderr; also ML_PROJECT_QUIET=1.",
)
def cli(quiet: bool) -> None:
    """Train, check, promote and use a problem's model in dev, staging and prod.

    \b
    Examples:
      ml-project train --env dev            # validate, train, evaluate, register, gate
      ml-project show --env dev             # versions, aliases, gate results, lineage
      ml-project reproduce --env dev --version 1
      ml-project extract-batch --env dev --query "month == 12" --output batch.parquet
      ml-project predict --env dev --input batch.parquet --output scored.parquet
      ml-project monitor --env dev --input batch.parquet --labels
    """
    tracking.quiet_environment()
    configure_logging(quiet=quiet)
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), on_signal)


def configure_logging(*, quiet: bool) -> None:
    """The package's progress lines (one a stage) on stderr, as bare messages; none when quiet."""
    logger = logging.getLogger("ml_project")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@settings_options
@click.option("--allow-dirty", is_flag=True, help="Train from uncommitted code (recorded).")
@views.json_option
@handle_errors
def train(env: str, allow_dirty: bool, as_json: bool) -> None:
    """Train, evaluate and register a model version for ENV.

    \b
    Examples:
      ml-project train --env dev
      ml-project train --env staging --seed 7 --set params.max_iter=50
      ml-project train --env prod --table orders=data/orders.parquet
      ml-project train --env dev --problem my_problem
    """
    from ml_project.pipeline import run_training

    settings = resolve_settings(env)
    with report_on_gate_failure(views.train_text, as_json):
        result = run_training(settings, root=project_root(), allow_dirty=allow_dirty)
    views.echo(result, views.train_text, as_json=as_json)


@cli.command(epilog=EXIT_CODES_HELP)
@click.option(
    "--table",
    "tables",
    multiple=True,
    required=True,
    metavar="NAME=PATH",
    help="A table of the problem: CSV, zipped CSV or Parquet (repeatable; the first holds the "
    "key and the label).",
)
@click.option("--label", required=True, metavar="COLUMN", help="The column to predict.")
@click.option(
    "--key", required=True, metavar="COLUMN[,COLUMN...]", help="The column(s) naming one row."
)
@click.option("--kind", required=True, type=click.Choice(TASKS), help="The task.")
@click.option("--name", metavar="NAME", help="The problem's folder (default: the first table).")
@click.option("--force", is_flag=True, help="Overwrite the problem's files if they exist.")
@handle_errors
def init(
    tables: tuple[str, ...], label: str, key: str, kind: Task, name: str | None, force: bool
) -> None:
    """Write a new problem under problems/ from its tables: settings, suites, code.

    The tables are profiled; the settings (features, sample fractions, gate) and the
    expectation suites say what was observed, each rule HARD or OBSERVED (widen it when the
    world moves). A further table sharing columns that name one of its rows is joined in
    records(); a time column holds out the newest rows. The new problem becomes the project's
    default (`problem:` in environments/base.yaml); --problem NAME still chooses any other one.
    It never overwrites a problem's files without --force.

    \b
    Examples:
      ml-project init --table churn=data/churn.csv --label churned --key customer_id \\
          --kind binary
      ml-project init --table orders=data/orders.parquet --table customers=data/customers.csv \\
          --label amount --key order_id --kind regression --name order_amount
    """
    from ml_project import scaffold

    keys = tuple(part.strip() for part in key.split(",") if part.strip())
    if not keys:
        raise ConfigError(f"--key {key!r}: name at least one column.")
    request = scaffold.InitRequest(
        tables=scaffold.init_tables(tables), label=label, key_columns=keys, kind=kind, name=name
    )
    plan = scaffold.run_init(request, root=project_root(), force=force)
    click.echo(views.next_steps(plan, request))


@cli.command("model-input-suite", epilog=EXIT_CODES_HELP)
@env_option
@settings_options
@click.option("--force", is_flag=True, help="Overwrite the problem's model_input.yaml.")
@handle_errors
def model_input_suite(env: str, force: bool) -> None:
    """Write the problem's model-input suite from the records its records() makes.

    For a problem whose records() you wrote (a join `init` could not guess, derived columns):
    the records of ENV's tables are profiled and expectations/model_input.yaml is written for
    the settings' features, each rule HARD or OBSERVED as `init` writes them. Its rules without
    `mostly` are built into the model, so serving refuses a row breaking one.

    \b
    Examples:
      ml-project model-input-suite --env dev --force
      ml-project model-input-suite --env prod --problem my_problem --force
    """
    from ml_project import scaffold

    settings = resolve_settings(env)
    path = scaffold.write_records_suite(settings, root=project_root(), force=force)
    click.echo(
        f"Wrote {path} for the features {', '.join(settings.features.columns)}: review it, "
        "commit it, then train."
    )


@cli.command(epilog=EXIT_CODES_HELP)
@path_option("--input", "Output of `ml-project train --json` (its last JSON line is read).")
@path_option("--output", "Write the Markdown to this file instead of stdout.", required=False)
@click.option(
    "--field", metavar="KEY", help="Print only this value of the result, e.g. model_version."
)
@click.option(
    "--verdict",
    is_flag=True,
    help="Write only the verdict's table row (problem, version, promoted or refused), one of "
    "a release's problems.",
)
@handle_errors
def summary(
    input_path: Path, output_path: Path | None, field: str | None, verdict: bool = False
) -> None:
    """Markdown summary of a training: metrics, gate verdict, lineage (for CI job pages).

    \b
    Examples:
      ml-project train --env staging --json | tee outputs/staging.out
      ml-project summary --input outputs/staging.out --output outputs/staging-summary.md
      ml-project summary --input outputs/staging.out --field model_version
    """
    from ml_project import summary as summary_module

    result = summary_module.read_result(input_path)
    if field:
        click.echo(summary_module.result_field(result, field))
        return
    if verdict:
        markdown = f"{summary_module.VERDICT_HEADER}\n{summary_module.render_verdict(result)}\n"
    else:
        markdown = summary_module.render_summary(result)
    if output_path:
        output_path.parent.mkdir(parents=True, exist_ok=True)
        target = check_output_file(output_path, option="--output")
        write_whole(target, lambda t: t.write_text(markdown, encoding="utf-8"), option="--output")
    else:
        click.echo(markdown, nl=False)


@cli.command("validate-data", epilog=EXIT_CODES_HELP)
@env_option
@settings_options
@views.json_option
@handle_errors
def validate_data(env: str, as_json: bool) -> None:
    """Run the problem's expectation suites on ENV's data, without training.

    Each table's suite checks its raw file; if they pass, the model-input suite checks the
    rows training would use. Exit code 3 and a report if any expectation fails.

    \b
    Examples:
      ml-project validate-data --env dev
      ml-project validate-data --env prod --table orders=data/orders.parquet
    """
    from ml_project.pipeline import run_validation
    from ml_project.validation import DataValidation

    settings = resolve_settings(env)
    reports = run_validation(settings, root=project_root())
    result = DataValidation(env, tuple(report.summary() for report in reports))
    views.echo(result, views.data_validated, as_json=as_json)


@contextlib.contextmanager
def report_on_gate_failure(text: Callable[[Any], str], as_json: bool) -> Iterator[None]:
    """A refused model still gets its summary (and JSON) before the gate's exit code."""
    try:
        yield
    except GateFailedError as exc:
        if exc.result is not None:
            views.echo(exc.result, text, as_json=as_json)
        raise


class FiniteFloat(click.FloatRange):
    """A FloatRange that also refuses inf and nan (which every comparison would let pass)."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        import math

        number: float = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--env", type=click.Choice(ENVS), help="Env whose registered model --version is.")
@click.option("--version", "version", type=click.IntRange(min=1), help="Model version number.")
@click.option("--run-id", help="The training run instead of a version.")
@click.option(
    "--model-uri", help="models:/NAME/N or models:/NAME@ALIAS instead of --env/--version."
)
@click.option(
    "--tolerance",
    type=FiniteFloat(min=0),
    help="Accept predictions and metrics within this max abs difference (default: bitwise).",
)
@click.option("--strict", is_flag=True, help="Refuse when package versions differ from training.")
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="NAME=PATH",
    help="Read a moved copy of table NAME (its sha256 must match; repeatable).",
)
@click.option(
    "--from-source",
    is_flag=True,
    help="Read today's sources instead of the snapshots the training kept (data changed?).",
)
@views.json_option
@problem_option
@handle_errors
def reproduce(
    env: str | None,
    version: int | None,
    run_id: str | None,
    model_uri: str | None,
    tolerance: float | None,
    strict: bool,
    tables: tuple[str, ...],
    from_source: bool,
    as_json: bool,
) -> None:
    """Rebuild a registered model version from its commit, config, seed and data, and compare.

    The recorded commit runs in a temporary git worktree (your tree is untouched); nothing is
    registered. Exit 0 only when identical, or within an explicit --tolerance; 6 otherwise
    (data changed: nothing is retrained).

    \b
    Examples:
      ml-project reproduce --env staging --version 3
      ml-project reproduce --model-uri models:/my_model_prod@champion --json
      ml-project reproduce --run-id 0123abcd... --tolerance 1e-9 --strict
      ml-project reproduce --env prod --version 2 --from-source
    """
    from ml_project import reproduce as reproduction  # numpy, pandas: only this command

    if sum(map(bool, (version, run_id, model_uri))) != 1 or bool(env) != bool(version):
        raise click.UsageError(
            "name one model: --env ENV --version N, --run-id ID, or --model-uri "
            "models:/NAME/N (or models:/NAME@ALIAS)."
        )
    wanted = reproduction.Wanted(run_id=run_id or "")
    if model_uri:
        wanted = reproduction.parse_model_uri(model_uri)
    elif env:
        wanted = reproduction.Wanted(resolve_settings(env).model_name, str(version))
    result = reproduction.reproduce_model(
        wanted,
        root=project_root(),
        tolerance=tolerance,
        strict=strict,
        tables=parse_tables(tables),
        from_source=from_source,
    )
    click.echo(views.format_reproduction(result))
    if as_json:  # not views.echo: its `plain` would print a NaN metric as null
        click.echo(json.dumps(views.reproduction_data(result), sort_keys=True))
    if not result.reproduced:
        raise NotReproducedError(views.failure_message(result))


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
@views.json_option
@problem_option
@handle_errors
def promote(
    env: str | None,
    version: int,
    reason: str | None,
    from_env: str | None,
    to_env: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
) -> None:
    """Move `champion` by hand, or copy a version into another env and gate it there.

    \b
    Forced (no gate; the reason, actor and commit go into the history):
      ml-project promote --env prod --version 12 --reason "hotfix: v13 fails on new data"
    Hybrid (deploy model): copy a staging version into prod, then run the prod gate:
      ml-project promote --from-env staging --to-env prod --version 7
    """
    from ml_project import promotion

    if env and not (from_env or to_env):
        if overrides:
            raise ConfigError("--set applies to the hybrid promotion (--from-env/--to-env).")
        settings = resolve_settings(env)
        result = promotion.promote_version(
            settings, version=str(version), reason=reason, root=project_root()
        )
    elif from_env and to_env and not env:
        source = resolve_settings(from_env)
        target = resolve_settings(to_env, overrides=overrides)
        with report_on_gate_failure(views.promotion_text, as_json):
            result = promotion.promote_copy(
                source, target, version=str(version), root=project_root(), reason=reason or ""
            )
    else:
        raise ConfigError(
            "promote takes either --env ENV --version N --reason TEXT (forced), or "
            "--from-env ENV --to-env ENV --version N (hybrid copy, gated)."
        )
    views.echo(result, views.promotion_text, as_json=as_json)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@click.option("--reason", default="rollback", show_default=True, help="Why (recorded).")
@views.json_option
@handle_errors
def rollback(env: str, reason: str, as_json: bool) -> None:
    """Move `champion` back to the champion before the current one.

    \b
    Example:
      ml-project rollback --env prod --reason "v13 doubles the alerts"
    """
    from ml_project import promotion

    settings = resolve_settings(env)
    result = promotion.rollback(settings, root=project_root(), reason=reason)
    views.echo(result, views.promotion_text, as_json=as_json)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@views.json_option
@handle_errors
def settle(env: str, as_json: bool) -> None:
    """End what stopped jobs left in the env, now rather than at its next training.

    A version left without a verdict by a run known to be gone (deleted, ended, its process
    dead on this machine, or its heartbeat silent for ten minutes wherever it ran) is tagged
    validation_status=failed and loses `challenger`; its run, and any run of a dead process
    still reading RUNNING, ends KILLED. A run whose state cannot be told is left alone.

    \b
    Example:
      ml-project settle --env prod
    """
    from ml_project import recovery

    settings = resolve_settings(env)
    result = recovery.settle_env(
        tracking.connect(project_root()),
        env=settings.env,
        name=settings.model_name,
        experiment=settings.experiment_name,
    )
    views.echo(result, views.settled_text, as_json=as_json)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@click.option("--history", "history_lines", default=10, show_default=True, help="History lines.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
@handle_errors
def show(env: str, history_lines: int, as_json: bool) -> None:
    """The env's registered model: versions, aliases, gate results, lineage and history.

    \b
    Examples:
      ml-project show --env prod
      ml-project show --env dev --json
    """
    from ml_project import promotion

    settings = resolve_settings(env)
    described = promotion.describe(settings, root=project_root())
    if as_json:
        click.echo(results.to_json(described))
    else:
        click.echo(views.show_text(described, history_lines=history_lines))


@cli.command("champion-release", epilog=EXIT_CODES_HELP)
@env_option
@views.json_option
@handle_errors
def champion_release(env: str, as_json: bool) -> None:
    """Print the release tag the env's champion was trained from (nothing when none, and why).

    The code the scheduled retraining checks out: the newest promoted release, never a refused
    one or a pre-release. Read in this checkout, which must hold the tags.

    \b
    Example:
      ml-project champion-release --env prod
    """
    from ml_project import releases

    settings = resolve_settings(env)
    client = tracking.connect(project_root(), write=False)
    found = releases.champion_release(client, settings.model_name, root=project_root())
    if found.reason:
        click.echo(f"No release to retrain from: {found.reason}.", err=True)
    if as_json:
        click.echo(results.to_json(found))
    elif found.tag:
        click.echo(found.tag)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@path_option(
    "--input",
    "Raw records to score: CSV, zipped CSV or Parquet (the model's input columns); "
    "with --engine spark, Parquet: a file, a folder of part files or a URI (s3a://, dbfs:/).",
    text=True,
)
@path_option(
    "--output",
    "Where to write the scored rows: .parquet or .csv (spark: .parquet, a folder).",
    text=True,
)
@model_uri_option("use")
@chunk_rows_option(
    250_000, "Rows read, checked and scored at a time (bounds memory; pandas engine)."
)
@click.option(
    "--engine",
    type=click.Choice(["pandas", "spark"]),
    default="pandas",
    show_default=True,
    help="pandas: in this process, in chunks. spark: mlflow.pyfunc.spark_udf on Apache Spark "
    "(pip install -e '.[spark]'; Java 17).",
)
@click.option(
    "--spark-master",
    metavar="URL",
    help="Spark master for --engine spark, e.g. local[2] (default: spark-submit's, else local[*]).",
)
@click.option(
    "--allow-duplicate-keys",
    is_flag=True,
    help="Score a batch whose rows repeat a key (data.key_columns) instead of refusing it "
    "(exit 3); the summary counts them (pandas engine).",
)
@views.json_option
@handle_errors
def predict(
    env: str,
    input_path: str,
    output_path: str,
    model_uri: str | None,
    chunk_rows: int,
    engine: str,
    spark_master: str | None,
    allow_duplicate_keys: bool,
    as_json: bool,
) -> None:
    """Score a file with the env's champion (or --model-uri) and write the predictions.

    Every output row carries the prediction (for a classifier, also the probability of each
    class) and the model's name, version and run id. The output appears only once complete.
    A batch holding the key columns whose rows repeat a key is refused (exit 3) unless
    --allow-duplicate-keys.

    \b
    Examples:
      ml-project extract-batch --env dev --query "month == 12" --output batch.parquet
      ml-project predict --env dev --input batch.parquet --output scored.parquet
      ml-project predict --env prod --input batch.csv --output scored.csv \\
          --model-uri models:/my_model_prod/3
      ml-project predict --env prod --engine spark --spark-master local[2] \\
          --input december.parquet --output scored.parquet
    """
    if spark_master and engine != "spark":
        raise click.UsageError("--spark-master is an option of --engine spark.")
    if engine == "pandas":
        check_output_file(output_path, option="--output")
    bound_scoring_threads()
    settings, root = resolve_settings(env), project_root()
    if engine == "spark":
        from ml_project.spark_scoring import run_spark_scoring

        summary = run_spark_scoring(
            settings,
            root=root,
            input_path=input_path,
            output_path=output_path,
            model_uri=model_uri,
            master=spark_master,
            allow_duplicate_keys=allow_duplicate_keys,
        )
    else:
        from ml_project.predict import run_batch_scoring

        summary = run_batch_scoring(
            settings,
            root=root,
            input_path=Path(input_path),
            output_path=Path(output_path),
            model_uri=model_uri,
            chunk_rows=chunk_rows,
            allow_duplicate_keys=allow_duplicate_keys,
        )
    views.echo(summary, lambda s: views.scoring_line(s, input_path, output_path), as_json=as_json)


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@model_uri_option("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--workers", type=click.IntRange(1), default=1, show_default=True, help="Server processes."
)
@click.option(
    "--poll-interval",
    type=FiniteFloat(min=0, max=3600),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to check the alias served (@champion) and switch to a new version the gate "
    "passed; 0: never. A pinned version (models:/NAME/N) is never switched.",
)
@handle_errors
def serve(
    env: str, model_uri: str | None, host: str, port: int, workers: int, poll_interval: float
) -> None:
    """Serve the env's champion (or --model-uri) over HTTP until stopped.

    MLflow's scoring server (POST /invocations, GET /ping), with the model loaded as `predict`
    loads it: the types skops may create come from the problem's code here, never from the
    model's files. Rows breaking an input rule get a 400 naming the rule. When `champion`
    moves to a version the gate passed, the server loads it and switches without failing a
    request; every response names the version that answered (X-Model-Version).

    \b
    Examples:
      ml-project serve --env dev
      ml-project serve --env prod --host 0.0.0.0 --port 8080 --workers 2
      curl -s localhost:8080/invocations -H 'Content-Type: application/json' \\
          -d '{"dataframe_records": [{"month": 1, "region": "north"}]}'
    """
    bound_scoring_threads()
    from ml_project import serving, tracking

    root = project_root()
    settings = resolve_settings(env)
    client = tracking.connect(root, write=False)
    served = serving.plan(settings, root=root, model_uri=model_uri, client=client)
    serving.run(
        served,
        host=host,
        port=port,
        workers=workers,
        poll_seconds=poll_interval,
        ready=lambda: click.echo(
            serving.banner(
                served, host=host, port=port, workers=workers, poll_seconds=poll_interval
            ),
            err=True,
        ),
    )


@cli.command("extract-batch", epilog=EXIT_CODES_HELP)
@env_option
@path_option("--output", "Where to write the records: .parquet or .csv.")
@click.option(
    "--query", default="", help='Keep the records matching a pandas query, e.g. "month == 12".'
)
@click.option("--rows", type=click.IntRange(1), help="Keep at most this many rows (the first).")
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="NAME=PATH",
    help="Read table NAME from PATH instead of the configured file (repeatable).",
)
@handle_errors
def extract_batch(
    env: str, output_path: Path, query: str, rows: int | None, tables: tuple[str, ...]
) -> None:
    """Write raw records to score: the problem's tables made into records, as training does.

    The records hold the model's input columns and what the label is made of (which the
    model ignores and `monitor --labels` uses).

    \b
    Example:
      ml-project extract-batch --env dev --query "month == 12" --rows 5000 --output batch.parquet
    """
    from ml_project import pipeline
    from ml_project.problem import load_problem

    if output_path.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise ConfigError(f"{output_path}: the output must end in .parquet or .csv.")
    check_output_file(output_path, option="--output")
    settings = resolve_settings(env, tables=tables)
    root = project_root()
    problem = load_problem(settings, root)
    records = problem.records(pipeline.read_tables(pipeline.table_paths(settings, root)))
    if query:
        try:
            records = records.query(query)
        except Exception as exc:  # pandas raises many kinds for a bad expression
            raise ConfigError(f"--query {query!r} cannot be applied: {exc}.") from exc
        if records.empty:
            raise ConfigError(f"--query {query!r} keeps no record: nothing to write.")
    if rows:
        records = records.head(rows)
    if output_path.suffix.lower() in (".parquet", ".pq"):
        write_whole(output_path, lambda t: records.to_parquet(t, index=False), option="--output")
    else:
        write_whole(output_path, lambda t: records.to_csv(t, index=False), option="--output")
    click.echo(f"Wrote {len(records)} records to {output_path}.")


@cli.command(epilog=EXIT_CODES_HELP)
@env_option
@path_option(
    "--input", "The batch to check: raw records as `predict` takes them (CSV, zipped CSV, Parquet)."
)
@click.option(
    "--labels",
    is_flag=True,
    help="The batch carries what the label is made of (known after the fact): also compare "
    "the live primary metric with the recorded one.",
)
@click.option(
    "--allow-duplicate-keys",
    is_flag=True,
    help="With --labels, take a batch whose rows repeat a key (data.key_columns) and count "
    "every row, instead of refusing it (exit 3). Without --labels repeats are only reported.",
)
@model_uri_option("watch")
@overrides_option("monitor.psi_alert=0.3")
@chunk_rows_option(100_000, "Rows read and scored at a time (bounds memory).")
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(path_type=Path),
    help="Also append the table as Markdown to this file (e.g. $GITHUB_STEP_SUMMARY).",
)
@views.json_option
@handle_errors
def monitor(
    env: str,
    input_path: Path,
    labels: bool,
    allow_duplicate_keys: bool,
    model_uri: str | None,
    chunk_rows: int,
    summary_path: Path | None,
    as_json: bool,
) -> None:
    """Check a batch against the champion's training profile; exit 7 on drift.

    Per model feature: population stability index (PSI) against the quantile bins or
    categories of the training rows, and the change in null rate; the PSI of the model's
    score; with --labels, the live primary metric against the model's recorded test one (rows
    labelled with a class the model never learnt are counted apart and left out). Rows whose
    key repeats an earlier row's are reported; with --labels they refuse the batch (exit 3)
    unless --allow-duplicate-keys. Thresholds: the env's `monitor:` settings. Logs a run to
    <experiment>_monitoring, tagged with the model version. Exit 0: no threshold crossed
    (warnings allowed); 7: drift.

    \b
    Examples:
      ml-project extract-batch --env dev --query "month == 12" --output batch.parquet
      ml-project monitor --env dev --input batch.parquet --labels
      ml-project monitor --env prod --input batch.parquet --json --summary summary.md
    """
    bound_scoring_threads()
    from ml_project.monitor import run_monitor

    if summary_path:  # before the monitoring run is logged
        check_output_file(summary_path, option="--summary")
    settings = resolve_settings(env)
    result = run_monitor(
        settings,
        root=project_root(),
        input_path=input_path,
        labels=labels,
        model_uri=model_uri,
        chunk_rows=chunk_rows,
        allow_duplicate_keys=allow_duplicate_keys,
    )
    data = views.monitor_data(result)
    click.echo(views.summary_text(data))
    if summary_path:  # appended (a CI job's step summary), the whole file replaced at once
        before = summary_path.read_text(encoding="utf-8") if summary_path.is_file() else ""
        text = before + views.summary_text(data, markdown=True)
        write_whole(
            summary_path, lambda t: t.write_text(text, encoding="utf-8"), option="--summary"
        )
    if as_json:
        click.echo(results.to_json(data))
    if result.drifted:
        raise DriftDetectedError(
            f"{len(result.report.reasons)} threshold(s) of the {env} env crossed by {input_path}: "
            + "; ".join(result.report.reasons)
            + f". Monitoring run {result.run_id}."
        )


# scikit-learn's OpenMP starts one thread per core in every process that scores, for each call:
# a served model answering one row, or a batch beside other work, then fights for the same cores
# (benchmarks/profiles/serve-2026-12-07.txt: p99 under load). A command that scores runs its
# model on one thread unless the user's own environment sets the variable. OpenMP reads it once,
# when scikit-learn is first imported: the command sets it before importing its module.
SCORING_THREADS = {"OMP_NUM_THREADS": "1"}


def bound_scoring_threads() -> None:
    """One OpenMP thread a scoring process (and its server workers), unless already set."""
    for name, value in SCORING_THREADS.items():
        os.environ.setdefault(name, value)


# Importing mlflow, scikit-learn and great-expectations allocates millions of long-lived
# objects; with Python's default thresholds the cyclic GC walks them again and again (~0.7 s a
# command), then once more at exit (~1-2 s). Collect less often, and freeze what is left at the
# end so the interpreter's shutdown does not traverse it (benchmarks/: ~2.5 s of a staging run).
GC_THRESHOLDS = (50_000, 20, 100)


def main() -> None:
    """Entry point of `ml-project` and `python -m ml_project`."""
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:  # raised before a command's own handler (e.g. in a callback)
        click.echo(f"ml-project: {exc.label}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        click.echo(f"ml-project: {exc.label}: {exc.signal_name}.", err=True)
        sys.exit(exc.exit_code)
    finally:
        gc.freeze()
