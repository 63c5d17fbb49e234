"""docs/architecture.md draws every module under runner/, and only those.

The Layout tree has one line per module (a package's line stands for its ``__init__.py``),
each saying what the module is for.  A module added, moved or removed without the tree
changing fails here, listing what is missing and what is extra.
"""

import re
from pathlib import Path

REPO = Path(__file__).parents[1]
DOC = REPO / "docs" / "architecture.md"
# "│   ├── name.py   what it is for": a depth of four characters per level, a branch, a name
ENTRY = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>[\w.]+/?)(?P<rest>.*)$")


def layout_block(text: str) -> list[str]:
    """The lines of the first fenced block after the ``## Layout`` heading."""
    section = text.split("\n## Layout\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def drawn_modules(lines: list[str]) -> tuple[set[str], list[str]]:
    """Module paths the tree names, and the lines that name one without saying what it is."""
    root, _, _ = lines[0].partition(" ")
    assert root == "runner/", f"the tree starts at {root!r}, not runner/"
    modules = {"runner/__init__.py"}
    folders = ["runner"]
    unexplained = []
    for line in lines[1:]:
        entry = ENTRY.match(line)
        if entry is None:
            continue  # the continuation of the line above
        depth = len(entry["indent"]) // 4 + 1
        del folders[depth:]
        name = entry["name"]
        if not entry["rest"].strip():
            unexplained.append(line)
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
            modules.add("/".join([*folders, "__init__.py"]))
        else:
            modules.add("/".join([*folders, name]))
    return modules, unexplained


def test_the_layout_tree_lists_every_module_and_nothing_else():
    drawn, unexplained = drawn_modules(layout_block(DOC.read_text(encoding="utf-8")))
    present = {p.relative_to(REPO).as_posix() for p in (REPO / "runner").rglob("*.py")}
    missing, extra = sorted(present - drawn), sorted(drawn - present)
    assert (missing, extra) == ([], []), (
        "docs/architecture.md, ## Layout, is out of date:\n"
        f"  modules not in the tree: {missing}\n"
        f"  tree lines naming no module: {extra}"
    )
    assert not unexplained, f"tree lines that do not say what the module is for: {unexplained}"


def test_the_parser_notices_a_missing_and_an_extra_module():
    lines = [
        "runner/        the package",
        "├── a.py       one",
        "├── pkg/       a package",
        "│   └── b.py   two",
        "│              more about two",
        "└── c.py       three",
    ]
    drawn, unexplained = drawn_modules(lines)
    assert drawn == {
        "runner/__init__.py",
        "runner/a.py",
        "runner/pkg/__init__.py",
        "runner/pkg/b.py",
        "runner/c.py",
    }
    assert not unexplained
    _, unexplained = drawn_modules([*lines[:-1], "└── c.py"])
    assert unexplained == ["└── c.py"]
