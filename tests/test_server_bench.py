"""server.bench: the relay benchmark runs end to end, on Redis with two relay processes, and its CPU
accounting bounds what any spread over processes could reach.

Locally a missing `redis-server` skips the end-to-end test; in CI (CI=true) it fails it.
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from _require import require
from server import bench

pytestmark = pytest.mark.timeout(120)


def test_machine_cpu_seconds_count_busy_time_within_all_time():
    first = bench.machine_cpu_seconds()
    if not sys.platform.startswith("linux"):
        assert first is None
        return
    sum(i * i for i in range(2_000_000))  # some busy time
    second = bench.machine_cpu_seconds()
    busy, total = second[0] - first[0], second[1] - first[1]
    # tick counts since boot, divided by the clock rate: their differences round in the last bits
    assert -1e-6 <= busy <= total + 1e-6 and second[0] <= second[1]


def test_the_cpu_bound_is_the_deltas_the_cores_could_take_in_a_round_s_cpu_time():
    # 4 deltas a round that cost 4 CPU-seconds: 2 cores take at most 2 deltas / s, 16 at most 16
    assert bench.cpu_bound(4, 2, 4.0) == 2.0
    assert bench.cpu_bound(4, 16, 4.0) == 16.0


def test_two_relay_processes_on_redis_complete_every_round_and_report_their_cpu(tmp_path):
    require(shutil.which("redis-server") is not None, "redis-server not found (apt-get install redis-server)")
    out = tmp_path / "load.json"
    assert bench.main(["--model", "nano", "--clients", "2", "--rounds", "2", "--repeats", "1",
                       "--processes", "2", "--redis", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    wire = d["loopback"]
    assert wire["processes"] == 2 and wire["rounds_completed"] == 2
    # each client sent one f16 DELTA per round and got one f16 UPDATE: 2 bytes per parameter each way,
    # plus the frames' headers and the round's JSON messages (about a kilobyte: 1 % of a nano delta)
    assert 2.0 < wire["bytes_per_param_up"] < 2.05 and 2.0 < wire["bytes_per_param_down"] < 2.05
    assert wire["aggregation_updates_per_s"] > 0 and wire["round_close_s"] > 0
    if sys.platform.startswith("linux"):
        assert len(wire["machine_cpu_s_all"]) == 2 and wire["machine_cpu_s_per_round"] > 0
        assert wire["cpu_bound_updates_per_s"] == pytest.approx(
            bench.cpu_bound(2, wire["cores"], wire["machine_cpu_s_per_round"]))
    assert d["command"].startswith("python -m server.bench --model nano")
