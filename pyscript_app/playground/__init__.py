"""The playground page's logic, pure Python (no `js`, no numpy): settings, pasted-text data sets,
progress and its rendering, the training session with checkpoints. The DOM glue that drives it in a
PyScript worker is browser/playground_page.py."""
