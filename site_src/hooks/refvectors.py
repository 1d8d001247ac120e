"""mkdocs hook: the bench page's reference vectors, computed by the numpy reference at build time.

After the assets hook has (re)written site/py/, this writes site/py/refvectors/index.json and one
<case>.bin per parity case (pyscript_app/gpu/parity_cases.py: seeded inputs, the numpy reference's
outputs, tolerances, the dispatch recipe). The browser runs them with gpu/parity_runner.py, the same
runner the native tests use. Cases whose kernels the registry lacks are listed under "skipped".
Must come AFTER assets.py in mkdocs.yml's `hooks:` (that hook clears site/py/ on every build).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig

REFVECTORS_DIR = "py/refvectors"


def on_post_build(config: MkDocsConfig) -> None:
    repo_root = Path(config.config_file_path).resolve().parent
    if str(repo_root) not in sys.path:  # `mkdocs` run from a venv without the editable install
        sys.path.insert(0, str(repo_root))
    from pyscript_app.gpu.parity_cases import build_bundle

    build_bundle().write(Path(config.site_dir) / REFVECTORS_DIR)
