"""The package's rooms: the README's layout table matches the tree, and imports flow one way."""

from __future__ import annotations

import ast
import re

from _require import REPO_ROOT

PACKAGE = REPO_ROOT / "pyscript_app"
# Rooms that the pages and the command line build on; they never import the pages or the CLI.
FOUNDATIONS = ("reference", "data", "gpu", "train")
UPPER = ("browser", "playground", "lessons", "cli")


def _layout_rows() -> dict[str, str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) >= 2:
            for path in re.findall(r"`([^`]+)`", cells[0]):
                rows[path] = cells[1]
    return rows


def test_every_path_in_the_layout_table_exists():
    for path in _layout_rows():
        assert (REPO_ROOT / path).exists(), f"README layout names {path}, which is not in the tree"


def test_every_room_is_in_the_table_and_its_modules_exist():
    rows = _layout_rows()
    rooms = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    for room in rooms:
        key = f"pyscript_app/{room}/"
        assert key in rows, f"README layout has no row for {key}"
        for module in re.findall(r"`(\w+\.py)`", rows[key]):
            assert (PACKAGE / room / module).is_file(), f"README names {key}{module}, which does not exist"
    top = rows["pyscript_app/"]
    for module in sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"):
        assert f"`{module}`" in top, f"README layout does not name pyscript_app/{module}"


def _imported_rooms(path, package=PACKAGE) -> set[str]:
    """The pyscript_app rooms (or top-level modules) a module imports from, relative imports included."""
    rel = path.relative_to(package).parts[:-1]
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[: len(rel) - node.level + 1])
                target = base + (node.module.split(".") if node.module else [])
                names = [a.name for a in node.names] if not node.module and not base else []
                rooms.update(target[:1] or names)
            elif node.module and node.module.startswith("pyscript_app."):
                rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            rooms.update(a.name.split(".")[1] for a in node.names if a.name.startswith("pyscript_app."))
    return rooms


def test_foundations_import_nothing_from_the_pages_or_the_cli():
    for room in FOUNDATIONS:
        for path in sorted((PACKAGE / room).rglob("*.py")):
            bad = _imported_rooms(path) & set(UPPER)
            assert not bad, f"{path.relative_to(REPO_ROOT)} imports from {sorted(bad)}"


def test_the_rule_check_sees_relative_absolute_and_lazy_imports(tmp_path):
    (tmp_path / "gpu").mkdir()
    module = tmp_path / "gpu" / "probe.py"
    module.write_text("from .registry import KERNELS\nfrom ..browser.dom import set_text\nfrom .. import rng\n"
                      "def f():\n    from pyscript_app.cli.main import main\n    import pyscript_app.playground.view\n",
                      encoding="utf-8")
    assert _imported_rooms(module, tmp_path) == {"gpu", "browser", "rng", "cli", "playground"}
