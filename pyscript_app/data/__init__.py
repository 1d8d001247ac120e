"""Text to tokens: bpe.py (the byte-level BPE tokenizer we train), datasets.py (the registry: fetch
and verify raw text), splits.py (documents and the train/val split), tokenfile.py (the .bin token
file format), prepare.py (text -> tokenizer + token files, as `tabgpt data` and the site do); GPT-2's own
byte-level BPE for imported checkpoints: gpt2_pretokenize.py (its split pattern without `regex`) and
gpt2_tokenizer.py.
Pure Python: runs in Pyodide."""
