"""server.storage: atomic checkpoints of a JSON header and raw little-endian arrays."""

from __future__ import annotations

import os

import numpy as np
import pytest

from server import storage
from server.storage import CheckpointError, CheckpointStore

SID = "s" * 22


def _arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"weights": rng.standard_normal(1001).astype(np.float32), "momentum": rng.standard_normal(7).astype(np.float32)}


def test_round_trip_keeps_header_and_arrays_bit_for_bit(tmp_path):
    store = CheckpointStore(tmp_path)
    arrays = _arrays()
    store.save(SID, {"session_id": SID, "round": 3, "history": [{"loss": 2.5}]}, arrays)
    [(header, loaded)] = store.load_all()
    assert header == {"session_id": SID, "round": 3, "history": [{"loss": 2.5}]}
    for name, arr in arrays.items():
        assert loaded[name].dtype == np.float32 and loaded[name].tobytes() == arr.tobytes()
    raw = store.path_for(SID).read_bytes()
    assert raw[:4] == b"TGCK" and b"pickle" not in raw


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save(SID, {"session_id": SID, "round": 1}, _arrays(1))

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", crash)
    with pytest.raises(OSError):
        store.save(SID, {"session_id": SID, "round": 2}, _arrays(2))
    monkeypatch.undo()
    [(header, arrays)] = store.load_all()
    assert header["round"] == 1 and arrays["weights"].tobytes() == _arrays(1)["weights"].tobytes()
    assert os.listdir(store.folder) == [SID + ".tgck"]


def test_corrupt_files_are_skipped_not_fatal(tmp_path):
    store = CheckpointStore(tmp_path)
    good, bad_sha, truncated, garbage = "g" * 22, "b" * 22, "t" * 22, "x" * 22
    for sid in (good, bad_sha, truncated):
        store.save(sid, {"session_id": sid}, _arrays())
    raw = bytearray(store.path_for(bad_sha).read_bytes())
    raw[-100] ^= 0xFF  # inside the weights (the last 64 bytes are momentum + padding)
    store.path_for(bad_sha).write_bytes(bytes(raw))
    store.path_for(truncated).write_bytes(store.path_for(truncated).read_bytes()[:-100])
    store.path_for(garbage).write_bytes(b"\x80\x04not a checkpoint")
    assert [h["session_id"] for h, _ in store.load_all()] == [good]


@pytest.mark.parametrize("bad", [b"", b"TGCK", b"TGCK\x01\0\0\0\xff\xff\xff\xff\0\0\0\0"])
def test_decode_rejects_short_or_lying_prefixes(bad):
    with pytest.raises(CheckpointError):
        storage.decode_checkpoint(bad)


def test_session_ids_that_are_not_tokens_never_become_paths(tmp_path):
    store = CheckpointStore(tmp_path)
    for bad in ("../../etc/passwd", "a/b" * 10, "x" * 8):
        with pytest.raises(CheckpointError):
            store.path_for(bad)
    store.delete(SID)  # deleting a missing checkpoint is fine


def test_a_header_over_the_load_limit_is_never_written(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    store.save(SID, {"session_id": SID, "round": 1}, _arrays(1))
    monkeypatch.setattr(storage, "MAX_HEADER_BYTES", 1000)
    with pytest.raises(CheckpointError, match="over the 1000 byte limit"):
        store.save(SID, {"session_id": SID, "round": 2, "history": [{"loss": 1.0}] * 100}, _arrays(2))
    [(header, _)] = store.load_all()
    assert header["round"] == 1  # the old checkpoint stays
