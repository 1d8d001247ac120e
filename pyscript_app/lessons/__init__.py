"""The lessons' pure Python: what each lesson page computes and shows, importable on CPython.

The browser glue (pyscript_app/browser/lesson_<name>.py) only reads inputs from the page and writes
the HTML these modules build. Nothing here imports numpy, js or pyodide.
"""
