"""Training: the Backend interface (backend.py) and its choice (backend_choice.py), the numpy
backend (numpy_backend.py), the Trainer loop (trainer.py), the learning-rate schedule
(schedule.py), checkpoints (checkpoint.py, run_state.py) and the sampler (sampler.py).
The GPU backend lives with the GPU hosts (gpu/trainer_backend.py)."""
