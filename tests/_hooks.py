"""The site's mkdocs hooks (site_src/hooks/*.py) as modules for the tests: they are build steps, not a package."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from _require import REPO_ROOT, module_available, require


def load_hook(file_name: str) -> ModuleType:
    """site_src/hooks/FILE_NAME loaded as a fresh module (mkdocs must be installed: the hooks import it)."""
    require(module_available("mkdocs"), "mkdocs is not installed (pip install -e '.[test]')")
    spec = importlib.util.spec_from_file_location(f"tabgpt_hook_{file_name[:-3]}", REPO_ROOT / "site_src/hooks" / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
