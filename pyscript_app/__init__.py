"""tabgpt's Python: runs natively (CPython) and in the browser (Pyodide via PyScript)."""

__version__ = "0.1.0"
