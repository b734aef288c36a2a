"""`make docs-check`: run every shell block of the README and docs/ as a reader would paste them.

The blocks (```bash fences) run in a scratch clone of the checkout's HEAD (a temp dir), page by
page in ORDER and top to bottom within a page, each in its own `bash` with `set -euo pipefail`,
from the clone's folder. The project's venv is reused, never installed again: its bin/ goes
first on PATH, the clone's `.venv` links to it (the docs write `.venv/bin/ml-project`), the
clone's code is imported (PYTHONPATH) and `make` skips its install step (SKIP_INSTALL=1). The
environment is a laptop's: MLFLOW_*, CI and GITHUB_* are dropped, so the blocks use the clone's
own ./mlflow.db; TMPDIR is in the scratch folder, removed with it when the check passes.

A block or some of its lines that cannot run here are marked in the Markdown by an HTML comment
on the line before the fence, which the rendered page does not show:

    <!-- docs-check: skip (needs Docker) -->                  the whole block
    <!-- docs-check: skip "make test" (the whole suite) -->   the lines starting with that text

Each skip is printed with its reason. A block's background processes (a server it started) are
stopped when it ends; a block running longer than --timeout fails. The report gives each block's
file:line and exit code; the check fails when a block fails or when the clone's `git status` is
not clean at the end. Exit codes: 0 passed, 1 a block failed or the tree is dirty, 2 a marker
or a page the check cannot read.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The order a reader follows, each page using what the pages before it made. The README's first
# command trains the dev model the others read; deploy-code's hybrid promotion makes the prod
# champion that scaling, gate-and-promotion and lineage use; make-it-yours comes last, as its `init`
# makes the new problem the project's default.
ORDER = (
    "README.md",
    "docs/environments.md",
    "docs/data-validation.md",
    "docs/monitoring.md",
    "docs/deploy-code.md",
    "docs/scaling.md",
    "docs/gate-and-promotion.md",
    "docs/lineage.md",
    "docs/data-sources.md",
    "docs/serving.md",
    "docs/ci-cd.md",
    "docs/performance.md",
    "docs/exit-codes.md",
    "docs/dependencies.md",
    "docs/make-it-yours.md",
)
FENCE = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"^<!--\s*docs-check:(.*?)-->[ \t]*$", re.MULTILINE)  # a line of its own
USAGE = '<!-- docs-check: skip (REASON) --> or <!-- docs-check: skip "LINE START" (REASON) -->'
SKIP = re.compile(r'\s*skip((?:\s+"[^"]+")*)\s+\((.+)\)\s*')
DROPPED_PREFIXES = ("MLFLOW_", "GITHUB_")
# and the calling make's own variables (a `make docs-check ENV=staging` would reach the docs' make)
DROPPED = {
    "CI",
    "ML_PROJECT_ROOT",
    "VIRTUAL_ENV",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
}


class MarkerError(Exception):
    """A docs-check marker the check cannot apply."""


# tokens and logical_lines split a block into commands for tests/ci/test_docs_commands.py (each
# command's options checked against the CLI); the check here runs each block whole.
def tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line.removeprefix("$ "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def logical_lines(block: str) -> list[str]:
    """The block's lines, a backslash continuation or a quote left open joining the next."""
    lines, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            tokens(pending)
        except ValueError:  # a quoted string goes on
            continue
        lines.append(pending)
        pending = ""
    assert not pending, f"a quote is never closed: {pending[:80]}"
    return lines


@dataclass(frozen=True)
class Block:
    """One ```bash block: where it is, what runs, and what is skipped and why."""

    where: str
    text: str
    skip: str | None = None
    skipped_lines: tuple[str, ...] = ()
    reason: str = ""


def blocks(text: str, page: str) -> list[Block]:
    """The page's bash blocks in order, with their markers applied (MarkerError when one
    is malformed, placed before no block, or names a line the block does not have)."""
    found = []
    used: set[int] = set()
    for fence in FENCE.finditer(text):
        line = text.count("\n", 0, fence.start()) + 1
        where = f"{page}:{line}"
        before = text[: fence.start()].rstrip().rsplit("\n", 1)[-1].strip()
        marker = MARKER.fullmatch(before)
        if not marker:
            found.append(Block(where, fence.group(1)))
            continue
        used.add(text.count("\n", 0, text.rindex(before, 0, fence.start())) + 1)
        skip = SKIP.fullmatch(marker.group(1))
        if not skip:
            raise MarkerError(f"{where}: unknown marker {before!r}: expected " + USAGE)
        prefixes = tuple(re.findall(r'"([^"]+)"', skip.group(1)))
        found.append(skipped(where, fence.group(1), prefixes, skip.group(2).strip()))
    for marker in MARKER.finditer(text):
        line = text.count("\n", 0, marker.start()) + 1
        if line not in used:
            raise MarkerError(f"{page}:{line}: a docs-check marker must be the line before ```bash")
    return found


def skipped(where: str, text: str, prefixes: tuple[str, ...], reason: str) -> Block:
    """The block with the lines starting with one of `prefixes` (and their backslash
    continuations) dropped, or the whole block skipped when there are none."""
    if not prefixes:
        return Block(where, text, skip=reason, reason=reason)
    kept, dropped, continued = [], [], False
    for line in text.splitlines(keepends=True):
        if continued or line.startswith(prefixes):
            dropped.append(line.rstrip("\n"))
            continued = line.rstrip("\n").endswith("\\")
        else:
            kept.append(line)
    for prefix in prefixes:
        if not any(line.startswith(prefix) for line in dropped):
            raise MarkerError(f"{where}: no line of the block starts with {prefix!r}")
    return Block(where, "".join(kept), skipped_lines=tuple(dropped), reason=reason)


def pages(root: Path) -> list[str]:
    """The pages to run in ORDER; a page of docs/ that ORDER does not place is an error."""
    present = {"README.md"} | {f"docs/{path.name}" for path in (root / "docs").glob("*.md")}
    unplaced = sorted(present - set(ORDER))
    if unplaced:
        raise MarkerError(f"docs-check: place {', '.join(unplaced)} in ORDER ({__file__})")
    return [page for page in ORDER if page in present and (root / page).is_file()]


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def scratch_clone(root: Path, into: Path, venv: Path) -> Path:
    """A clone of root's HEAD (on its branch, if any) with `.venv` linking to the venv."""
    head = git("rev-parse", "HEAD", cwd=root)
    branch = git("rev-parse", "--abbrev-ref", "HEAD", cwd=root)
    clone = into / root.name
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(root), str(clone)], check=True)
    checkout = ["-B", branch, head] if branch != "HEAD" else ["--detach", head]
    git("checkout", "--quiet", *checkout, cwd=clone)
    if not has_identity(clone):  # a CI runner has none: the docs commit
        git("config", "user.name", "docs-check", cwd=clone)
        git("config", "user.email", "docs-check@localhost", cwd=clone)
    (clone / ".venv").symlink_to(venv, target_is_directory=True)
    with (clone / ".git" / "info" / "exclude").open("a", encoding="utf-8") as exclude:
        exclude.write("/.venv\n")  # docs-check's link, not the docs'
    return clone


def has_identity(clone: Path) -> bool:
    done = subprocess.run(["git", "config", "user.email"], cwd=clone, capture_output=True)
    return done.returncode == 0


def laptop_env(clone: Path, venv: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DROPPED and not key.startswith(DROPPED_PREFIXES)
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(PYTHONPATH=str(clone), SKIP_INSTALL="1", MLFLOW_DISABLE_TELEMETRY="true")
    return env


@dataclass(frozen=True)
class Outcome:
    block: Block
    code: int | None  # None: skipped; -1: timed out
    seconds: float = 0.0
    stray: bool = False  # background processes were left running and stopped


def run_block(block: Block, clone: Path, env: dict[str, str], timeout: float) -> Outcome:
    """Run the block in bash (set -euo pipefail) in its own process group, which is stopped
    when the block ends: a server it started in the background goes with it."""
    start = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", f"set -euo pipefail\n{block.text}"],
        cwd=clone,
        env=env,
        start_new_session=True,
    )
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = -1
    stray = stop_group(process)
    process.wait()
    return Outcome(block, code, time.monotonic() - start, stray)


def stop_group(process: subprocess.Popen[bytes]) -> bool:
    """SIGTERM the block's process group, SIGKILL what is left after 10 s; whether any of it
    was still running."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(100):
        process.poll()  # reap the block's own shell, or the group never empties
        time.sleep(0.1)
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return True


def status_line(outcome: Outcome) -> str:
    where = outcome.block.where
    if outcome.code is None:
        return f"{where:<34} skipped: {outcome.block.skip}"
    result = "timed out" if outcome.code == -1 else f"exit {outcome.code}"
    line = f"{where:<34} {result:<10} {outcome.seconds:7.1f} s"
    if outcome.block.skipped_lines:
        line += f"  ({len(outcome.block.skipped_lines)} line(s) skipped: {outcome.block.reason})"
    if outcome.stray:
        line += "  (background processes left running were stopped)"
    return line


def run(root: Path, venv: Path, *, only: list[str], timeout: float, keep: bool) -> int:
    """Run the pages' blocks in a scratch clone; print the report; the exit code."""
    chosen = [page for page in pages(root) if not only or page in only]
    todo = [block for page in chosen for block in blocks(read(root, page), page)]
    if git("status", "--porcelain", cwd=root):
        say(
            f"docs-check: runs HEAD ({git('rev-parse', '--short', 'HEAD', cwd=root)}); the "
            "uncommitted changes of the checkout are not in it"
        )
    scratch = Path(tempfile.mkdtemp(prefix="docs-check-"))
    clone = scratch_clone(root, scratch, venv)
    env = laptop_env(clone, venv)
    env["TMPDIR"] = str(scratch / "tmp")  # the blocks' `mktemp -d` go with the scratch clone
    (scratch / "tmp").mkdir()
    say(f"docs-check: {len(todo)} blocks of {len(chosen)} pages in {clone}")
    outcomes = []
    for block in todo:
        outcomes.append(announce_and_run(block, clone, env, timeout))
    dirty = git("status", "--porcelain", "--untracked-files=all", cwd=clone)
    failed = [o for o in outcomes if o.code not in (None, 0)]
    say("\ndocs-check report (file:line of the block's fence):")
    for outcome in outcomes:
        say(f"  {status_line(outcome)}")
    say(f"  git status of the clone: {'NOT clean:' if dirty else 'clean'}")
    for line in dirty.splitlines():
        say(f"    {line}")
    passed = not failed and not dirty
    ran = sum(o.code is not None for o in outcomes)
    say(
        f"docs-check: {'passed' if passed else 'FAILED'}: {ran} blocks run, {len(failed)} failed, "
        f"{len(outcomes) - ran} skipped"
    )
    if passed and not keep:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        say(f"docs-check: the scratch clone is kept: {clone}")
    return 0 if passed else 1


def announce_and_run(block: Block, clone: Path, env: dict[str, str], timeout: float) -> Outcome:
    say(f"\n=== {block.where}")
    if block.skip:
        say(f"skipped: {block.skip}")
        return Outcome(block, None)
    for line in block.skipped_lines:
        say(f"skipped ({block.reason}): {line}")
    say("\n".join(f"  $ {line}" for line in block.text.rstrip("\n").splitlines()))
    outcome = run_block(block, clone, env, timeout)
    say(f"--- {status_line(outcome)}")
    return outcome


def say(text: str = "") -> None:
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def read(root: Path, page: str) -> str:
    return (root / page).read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="The checkout (default: this).")
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix), help="The venv to reuse.")
    parser.add_argument("--page", action="append", default=[], help="Run only this page (again).")
    parser.add_argument("--timeout", type=float, default=900, help="Seconds a block may take.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch clone.")
    args = parser.parse_args(argv)
    try:
        return run(
            args.root.resolve(), args.venv, only=args.page, timeout=args.timeout, keep=args.keep
        )
    except MarkerError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
