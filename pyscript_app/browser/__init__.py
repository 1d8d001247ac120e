"""The browser host: Python in a PyScript (Pyodide) worker driving WebGPU through the JS FFI.

Modules that import `js` / `pyodide` (jsutil, webgpu_executor, bench_page) only load in Pyodide;
the rest of this package is pure Python and imports on CPython too.
"""
