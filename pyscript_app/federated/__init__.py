"""Federated training on the client side, shared by the browser page and native code.

Pure Python (no numpy, no `js`): local.py (the session's local steps: config, learning rate,
batches), padding.py (f16 tensors between the flat and the padded GPU layout), gpu_model.py (a
round's tensors on the GPU: delta and update kernels), client.py (the round loop over any
transport), dashboard.py / view.py / form.py (what the federated page shows and asks).
"""
