"""The README's annotated tree names every module of ml_project/, and only those."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_tree_lists_every_module_of_the_package():
    readme = (ROOT / "README.md").read_text()
    tree = readme[readme.index("\nml_project/ ") : readme.index("\ndeploy/")]
    listed = set(re.findall(r"^  ([a-z_]+\.py) ", tree, flags=re.M))
    modules = {path.name for path in (ROOT / "ml_project").glob("*.py")} - {
        "__init__.py",
        "__main__.py",
    }
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))
