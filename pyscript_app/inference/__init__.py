"""Generation from imported models: gpt2_checkpoint.py (a Hugging Face GPT-2 folder as a tabgpt
checkpoint, and back), generate.py (prompt -> tokens with the numpy reference, timed)."""
