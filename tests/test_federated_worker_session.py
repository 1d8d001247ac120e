"""The worker's session data: the session's tokenizer and model must match the prepared data set.
(Its round model is tested in test_federated_numpy_model.py.)"""

from __future__ import annotations

import pytest

from pyscript_app.config import preset
from pyscript_app.errors import UserError
from pyscript_app.data.prepare import prepare_dataset
from pyscript_app.federated.worker_session import load_session_data

MC = preset("nano", vocab_size=300)


def _session(**over) -> dict:
    return {"model": "nano", "model_config": MC.to_dict(), "dataset": "names", "batch": 2, "blocksize": 8,
            "max_local_steps": 3, "tokenizer_sha256": "", **over}


def test_session_data_must_use_the_session_tokenizer(tmp_path):
    text = tmp_path / "names.txt"  # a small stand-in, prepared under the registry name the session uses
    text.write_text("".join(f"name{i % 37}x{i % 11}\n" for i in range(300)))
    stats = prepare_dataset(str(text), tmp_path, vocab_size=300)
    train, val = load_session_data(_session(tokenizer_sha256=stats["tokenizer_sha256"]), tmp_path)
    assert len(train) == stats["train"]["tokens"] and len(val) == stats["val"]["tokens"]
    with pytest.raises(UserError, match="tokenizer"):
        load_session_data(_session(tokenizer_sha256="ab" * 32), tmp_path)
    with pytest.raises(UserError, match="tokens"):
        load_session_data(_session(tokenizer_sha256=stats["tokenizer_sha256"],
                                   model_config={**MC.to_dict(), "vocab_size": 1024}), tmp_path)
