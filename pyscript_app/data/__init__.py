"""Text to tokens: bpe.py (the byte-level BPE tokenizer we train), datasets.py (the registry: fetch
and verify raw text), splits.py (documents and the train/val split), tokenfile.py (the .bin token
file format) and prepare.py (text -> tokenizer + token files, as `tabgpt data` and the site do).
Pure Python: runs in Pyodide."""
