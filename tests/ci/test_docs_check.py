"""`make docs-check` (.ci/docs_check.py): the blocks it extracts, the skip markers it applies,
and a run in a scratch clone that fails when a block fails or leaves the tree dirty."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "docs_check.py"


def load_docs_check():
    spec = importlib.util.spec_from_file_location("docs_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


docs_check = sys.modules.get("docs_check") or load_docs_check()

SAMPLE = """# A page

Some text naming a marker, `<!-- docs-check: skip (REASON) -->`, which applies to nothing.

```bash
echo one
```

<!-- docs-check: skip (needs Docker) -->
```bash
docker build .
```

```
a tree, not a shell block
```

<!-- docs-check: skip "make test" "make bench" (the whole suite) -->
```bash
make train
make test \\
  --verbose
echo after
make bench
```
"""


def test_blocks_are_extracted_in_order_with_their_markers():
    found = docs_check.blocks(SAMPLE, "page.md")
    assert [(block.where, block.skip) for block in found] == [
        ("page.md:5", None),
        ("page.md:10", "needs Docker"),
        ("page.md:19", None),
    ]
    assert found[0].text == "echo one\n"
    assert found[2].text == "make train\necho after\n"
    assert found[2].skipped_lines == ("make test \\", "  --verbose", "make bench")
    assert found[2].reason == "the whole suite"


@pytest.mark.parametrize(
    ("markdown", "says"),
    [
        ("<!-- docs-check: run twice -->\n```bash\nls\n```\n", "unknown marker"),
        ("<!-- docs-check: skip (reason) -->\n\nText.\n\n```bash\nls\n```\n", "the line before"),
        ('<!-- docs-check: skip "make tset" (typo) -->\n```bash\nmake test\n```\n', "make tset"),
        ("<!-- docs-check: skip () -->\n```bash\nls\n```\n", "unknown marker"),
    ],
    ids=["unknown", "not-before-a-block", "stale-line", "no-reason"],
)
def test_a_marker_the_check_cannot_apply_is_an_error(markdown, says):
    with pytest.raises(docs_check.MarkerError, match=says):
        docs_check.blocks(markdown, "page.md")


def test_the_project_pages_are_all_placed_and_their_markers_apply():
    pages = docs_check.pages(ROOT)
    assert pages[0] == "README.md" and pages[-1] == "docs/make-it-yours.md"
    assert {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")} <= set(pages)
    found = [
        block for page in pages for block in docs_check.blocks(docs_check.read(ROOT, page), page)
    ]
    assert sum(block.skip is None for block in found) >= 10
    assert all(block.reason for block in found if block.skip or block.skipped_lines)


def project(tmp_path: Path, readme: str) -> Path:
    """A one-page git project with `readme` committed."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "README.md").write_text(readme, encoding="utf-8")
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "docs"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *command],
            cwd=root,
            check=True,
        )
    return root


def docs_check_run(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """The check on `root`, called from a CI job inside make: the blocks see neither."""
    ci = {"MLFLOW_TRACKING_URI": "http://ci.invalid", "CI": "true", "MAKEFLAGS": "ENV=prod"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *options],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **ci},
    )


def test_blocks_run_in_order_in_a_scratch_clone_and_skips_are_said(tmp_path):
    root = project(
        tmp_path,
        "```bash\necho made > out.txt && git status --short\n```\n\n"
        "<!-- docs-check: skip (needs Docker) -->\n```bash\nexit 3\n```\n\n"
        '```bash\ntest "$(cat out.txt)" = made && rm out.txt\n'
        'test -x .venv/bin/python && test -z "${MLFLOW_TRACKING_URI:-}${CI:-}${MAKEFLAGS:-}"\n'
        "```\n",
    )
    done = docs_check_run(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== README.md:1\n" in done.stdout and "?? out.txt" in done.stdout
    assert "=== README.md:6\nskipped: needs Docker" in done.stdout
    assert "=== README.md:10\n" in done.stdout and "git status of the clone: clean" in done.stdout
    assert not (root / "out.txt").exists()  # it ran in the clone, not in the checkout


def test_a_failing_block_fails_the_check_and_the_rest_still_runs(tmp_path):
    root = project(tmp_path, "```bash\nfalse\necho never\n```\n\n```bash\necho second\n```\n")
    done = docs_check_run(root)
    assert done.returncode == 1
    report = done.stdout.split("docs-check report")[1]
    assert "README.md:1" in report and "exit 1" in report and "\nnever\n" not in done.stdout
    assert "README.md:6" in report and "exit 0" in report
    assert "FAILED: 2 blocks run, 1 failed" in done.stdout


def test_a_dirty_tree_a_timeout_and_a_server_left_running(tmp_path):
    root = project(
        tmp_path,
        "```bash\nsleep 300 &\ntouch left-behind.txt\n```\n\n```bash\nsleep 30\n```\n",
    )
    done = docs_check_run(root, "--timeout", "1")
    assert done.returncode == 1
    assert "background processes left running were stopped" in done.stdout
    assert "timed out" in done.stdout
    assert "NOT clean" in done.stdout and "?? left-behind.txt" in done.stdout
