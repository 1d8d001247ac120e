"""The numpy reference GPT: the specification every WGSL kernel and training step is checked against."""
