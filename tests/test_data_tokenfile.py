"""Token files: header, round trip, rejection."""

from __future__ import annotations

import struct
from array import array

import pytest

from pyscript_app.data import tokenfile
from pyscript_app.data.bpe import Tokenizer
from pyscript_app.rng import pcg
from pyscript_app.data.tokenfile import TokenFileError, read_tokens, write_tokens


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train("the cat sat on the mat; the rat ate the hat.", vocab_size=300)


def seeded_ids(n: int, vocab: int, seed: int = 7) -> list[int]:
    return [pcg(seed * 65_537 + i) % vocab for i in range(n)]


# ---- token files ------------------------------------------------------------------------------


def test_round_trip_and_header(tmp_path, tok):
    ids = seeded_ids(1000, tok.vocab_size)
    path = tmp_path / "x.train.bin"
    write_tokens(path, ids, tok)
    back = read_tokens(path, tok)
    assert isinstance(back, array) and back.typecode == "H" and list(back) == ids
    assert path.stat().st_size == tokenfile.HEADER_SIZE + 2 * len(ids) == 52 + 2000
    head = tokenfile.read_header(path)
    assert head == {"version": 1, "vocab_size": 300, "tokenizer_sha256": tok.sha256, "count": 1000}
    raw = path.read_bytes()
    assert raw[:4] == b"TGTK" and raw[12:44] == bytes.fromhex(tok.sha256)
    assert struct.unpack_from("<H", raw, 52)[0] == ids[0]  # payload is little-endian u16


def test_empty_and_array_inputs(tmp_path, tok):
    write_tokens(tmp_path / "e.bin", [], tok)
    assert list(read_tokens(tmp_path / "e.bin", tok)) == []
    ids = array("H", seeded_ids(10, tok.vocab_size))
    write_tokens(tmp_path / "a.bin", ids, tok)
    assert read_tokens(tmp_path / "a.bin") == ids


def test_wrong_tokenizer_is_named_in_the_error(tmp_path, tok):
    other = Tokenizer.train("a completely different text, a different tokenizer", vocab_size=300)
    write_tokens(tmp_path / "x.bin", [1, 2, 3], tok)
    with pytest.raises(TokenFileError) as err:
        read_tokens(tmp_path / "x.bin", other)
    message = str(err.value)
    assert tok.sha256[:12] in message and other.sha256[:12] in message and "rerun tabgpt data" in message


@pytest.mark.parametrize(
    "corrupt, why",
    [
        (lambda raw: b"NOPE" + raw[4:], "not a tabgpt token file"),
        (lambda raw: raw[:4] + struct.pack("<H", 2) + raw[6:], "version 2"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\0\0", "truncated"),
        (lambda raw: raw[:30], "too short"),
        (lambda raw: raw[:8] + struct.pack("<I", 5) + raw[12:], "vocab_size"),
        (lambda raw: raw[:52] + struct.pack("<H", 300) + raw[54:], "outside its vocab_size"),
    ],
)
def test_corrupted_files_are_rejected(tmp_path, tok, corrupt, why):
    path = tmp_path / "x.bin"
    write_tokens(path, [5, 6, 7], tok)
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(TokenFileError, match=why):
        read_tokens(path)


def test_missing_file_says_what_to_run(tmp_path):
    with pytest.raises(TokenFileError, match="tabgpt data"):
        read_tokens(tmp_path / "absent.bin")


def test_ids_outside_the_vocabulary_are_not_written(tmp_path, tok):
    for bad in ([tok.vocab_size], [70_000], [-1]):
        with pytest.raises(TokenFileError):
            write_tokens(tmp_path / "x.bin", bad, tok)
    assert not (tmp_path / "x.bin").exists()
