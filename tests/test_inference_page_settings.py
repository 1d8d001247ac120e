"""inference/page_settings.py: the inference page's form values, checked with one line per mistake."""

import pytest

from pyscript_app.inference.page_settings import InputError, parse_settings


def test_defaults_and_values():
    s = parse_settings({"prompt": "Hi", "temperature": "0", "top_k": "40", "top_p": "0.9", "max_tokens": "64",
                        "seed": "7"})
    assert (s.prompt, s.temperature, s.top_k, s.top_p, s.max_tokens, s.seed) == ("Hi", 0.0, 40, 0.9, 64, 7)
    assert s.sampling.greedy and s.sampling.top_k == 40
    d = parse_settings({})
    assert (d.prompt, d.temperature, d.top_k, d.top_p, d.max_tokens, d.seed) == ("", 0.8, 0, 1.0, 64, 0)


@pytest.mark.parametrize("form, words", [
    ({"temperature": "-1"}, "Temperature must be >= 0"),
    ({"temperature": "hot"}, "is not a number"),
    ({"temperature": "nan"}, "finite"),
    ({"temperature": "1e-50"}, "rounds to 0"),
    ({"top_k": "2.5"}, "is not an integer"),
    ({"top_k": "-3"}, "Top-k"),
    ({"top_p": "0"}, "Top-p"),
    ({"max_tokens": "0"}, "Max tokens"),
    ({"max_tokens": "5000"}, "Max tokens"),
    ({"seed": "-1"}, "Seed"),
])
def test_bad_values_get_one_line(form, words):
    with pytest.raises(InputError, match=words):
        parse_settings(form)
