from array import array

import pytest

from pyscript_app.train import checkpoint


def _arrays():
    return {"params": array("f", [1.0, -2.5, 3.25]).tobytes(), "adam_m": array("f", [0.0] * 3).tobytes()}


def test_round_trip_in_pure_python(tmp_path):
    path = checkpoint.save(tmp_path / "run", {"step": 7, "model_config": {"a": 1}}, _arrays())
    assert path.name == checkpoint.FILENAME
    header, arrays = checkpoint.load(tmp_path / "run")
    assert header["step"] == 7 and header["model_config"] == {"a": 1}
    assert list(checkpoint.floats(arrays["params"])) == [1.0, -2.5, 3.25]
    assert [a["name"] for a in header["arrays"]] == ["params", "adam_m"]
    assert not list(tmp_path.glob("run/*.tmp"))


@pytest.mark.parametrize("mutate,msg", [
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:-2], "truncated"),
    (lambda b: b + b"\0\0\0\0", "trailing"),
    (lambda b: b[:12] + b"x" + b[13:], "JSON"),
])
def test_corrupt_files_give_one_clear_error(tmp_path, mutate, msg):
    blob = checkpoint.encode({"step": 1}, _arrays())
    with pytest.raises(checkpoint.CheckpointError, match=msg):
        checkpoint.decode(mutate(blob))


def test_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path)
