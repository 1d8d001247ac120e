"""The `tabgpt` command line (native only): main.py parses and dispatches; data.py, train.py and
bench.py run the subcommands of the same names. `python -m pyscript_app.cli` runs it too."""

from .main import main

__all__ = ["main"]
