"""pyscript_app/lessons/federated_view.py: the rounds table, the traffic table, byte units."""

from __future__ import annotations

import re

from pyscript_app.lessons.federated import Client, Outer, run_rounds, traffic_table_rows
from pyscript_app.lessons.federated_view import human_bytes, rounds_table, traffic_table, vec

CLIENTS = [Client("A<1>", (1.0, 0.0), 300), Client("B", (0.0, 1.0), 100)]


def test_rounds_table_has_one_row_per_round_and_a_column_per_client():
    rounds = run_rounds([0.0, 0.0], CLIENTS, Outer(), rounds=3, local_steps=1, inner_lr=0.5)
    html = rounds_table(CLIENTS, rounds)
    assert re.findall(r'data-round="(\d+)"', html) == ["0", "1", "2"]
    assert "d from A&lt;1&gt; (n=300)" in html and "momentum" not in html
    assert vec(rounds[-1].end) in html


def test_rounds_table_shows_momentum_for_diloco():
    rounds = run_rounds([0.0, 0.0], CLIENTS, Outer("diloco", 0.7, 0.9), rounds=2, local_steps=1, inner_lr=0.5)
    html = rounds_table(CLIENTS, rounds)
    assert "<th>momentum m</th>" in html and vec(rounds[-1].momentum) in html


def test_human_bytes_uses_binary_units():
    assert human_bytes(1023) == "1,023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024 ** 2) == "3.0 MiB"
    assert human_bytes(5 * 1024 ** 4) == "5120.0 GiB"


def test_traffic_table_lists_every_preset_with_its_parameter_count():
    rows = traffic_table_rows()
    html = traffic_table(rows)
    for t in rows:
        assert f'data-preset="{t.preset}"' in html and f"{t.params:,}" in html
