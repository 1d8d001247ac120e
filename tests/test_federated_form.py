"""federated/form.py: the create form's body, session ids from links, relay URLs, relay errors."""

import pytest

from pyscript_app.federated.form import (InputError, join_secret_from, relay_error_text, relay_urls, session_body,
                                         session_id_from, share_url)

DATASETS = {"names": {"tokenizer_sha256": "ab" * 32, "vocab_size": 1024}}
FORM = {"model": "nano", "dataset": "names", "aggregator": "diloco", "quorum": "3", "round_seconds": "60",
        "grace_seconds": "10", "max_local_steps": "20", "batch": "8"}


def test_the_form_becomes_the_relays_session_body_with_the_sites_tokenizer():
    body = session_body(FORM, DATASETS)
    assert body == {"model": "nano", "dataset": "names", "aggregator": "diloco", "tokenizer_sha256": "ab" * 32,
                    "vocab_size": 1024, "quorum": 3, "round_seconds": 60.0, "grace_seconds": 10.0,
                    "max_local_steps": 20, "batch": 8, "require_join_secret": True}


def test_planned_rounds_are_sent_when_given_and_left_out_when_blank():
    assert session_body({**FORM, "rounds": " 40 "}, DATASETS)["rounds"] == 40
    assert "rounds" not in session_body({**FORM, "rounds": ""}, DATASETS)


@pytest.mark.parametrize("change,words", [
    ({"quorum": "three"}, "quorum must be a whole number"),
    ({"quorum": "0"}, "quorum must be between 1 and 32"),
    ({"grace_seconds": "60"}, "grace period must be shorter"),
    ({"model": "huge"}, "model must be one of"),
    ({"dataset": "wiki"}, "data set must be one of names"),
    ({"aggregator": "sum"}, "FedAvg or DiLoCo"),
    ({"rounds": "0"}, "rounds must be between 1 and 1000000"),
    ({"rounds": "ten"}, "rounds must be a whole number"),
])
def test_bad_values_get_one_readable_line(change, words):
    with pytest.raises(InputError, match=words):
        session_body({**FORM, **change}, DATASETS)


def test_a_session_id_comes_from_the_id_or_from_a_shared_link():
    sid = "Abc_def-0123456789xy"
    assert session_id_from(f"  {sid} ") == sid
    assert session_id_from(f"http://127.0.0.1:8000/federated/?session={sid}") == sid
    assert share_url("http://h:1/federated/?x=1&session=old#top", sid) == f"http://h:1/federated/?session={sid}"
    for bad in ("", "short", "has space in it", "http://h/federated/"):
        with pytest.raises(InputError):
            session_id_from(bad)


def test_the_share_link_carries_the_join_secret_in_its_fragment():
    sid, secret = "Abc_def-0123456789xy", "s3cr3t_s3cr3t-s3cr3t"
    link = share_url("http://h:1/federated/?session=old#top", sid, secret)
    assert link == f"http://h:1/federated/?session={sid}#key={secret}"
    assert session_id_from(link) == sid and join_secret_from(link) == secret
    assert join_secret_from(sid) is None and join_secret_from(f"http://h/federated/?session={sid}#top") is None


def test_relay_urls_and_error_texts():
    assert relay_urls("http://127.0.0.1:8765/") == ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws")
    assert relay_urls("https://x.org/tabgpt") == ("https://x.org/tabgpt", "wss://x.org/tabgpt/ws")
    with pytest.raises(InputError):
        relay_urls("ftp://x")
    assert relay_error_text(422, {"detail": ["quorum must be <= 32", "bad"]}) == \
        "The relay refused these settings: quorum must be <= 32; bad."
    assert "no such session" in relay_error_text(404, {})
    assert relay_error_text(500, "oops") == "The relay answered HTTP 500."
    per_address = {"detail": ["at most 4 live sessions per address; delete one or let one expire"],
                   "reason": "sessions_per_address"}
    assert relay_error_text(429, per_address) == ("The relay limits the sessions one address may create: at most 4 "
                                                  "live sessions per address; delete one or let one expire.")
