"""The native worker's session data: the session's dataset, checked against its tokenizer and model.

Numpy-only (native; the browser fetches its data from the site). The worker's model and round
arithmetic are in federated/numpy_model.py (and gpu_model.py), its round loop in federated/client.py,
its local learning rate and batches in federated/local.py: all shared with the browser.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from ..errors import UserError
from ..data.datasets import REGISTRY
from ..data.prepare import load_prepared


def load_session_data(session: dict, data_dir: str | Path | None) -> tuple[array, array]:
    """(train, val) token arrays of the session's dataset; the tokenizer must be the session's."""
    name = session["dataset"]
    if name not in REGISTRY:  # never a path: the session's creator does not choose the worker's files
        raise UserError(f"the session's data set {name!r} is not one of {', '.join(REGISTRY)}: refusing to train")
    tok, train, val = load_prepared(name, data_dir)
    want = session.get("tokenizer_sha256") or ""
    if want and tok.sha256 != want:
        raise UserError(f"the {name} tokenizer in {data_dir or 'the data cache'} is {tok.sha256[:12]}, "
                        f"the session trains with {want[:12]}: prepare the session's tokenizer first")
    vocab = int(session["model_config"]["vocab_size"])
    if tok.vocab_size != vocab:
        raise UserError(f"the {name} tokenizer has {tok.vocab_size} tokens, the session's model {vocab}")
    if len(train) <= int(session["blocksize"]) + 1:
        raise UserError(f"the {name} train split has {len(train)} tokens, too few for blocksize {session['blocksize']}")
    return train, val
