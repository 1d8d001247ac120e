"""benchmarks/federated_inprocess.py: the round schedules and the data every setting shares."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _module():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("federated_inprocess", REPO / "benchmarks/federated_inprocess.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


fip = _module()


def test_round_plan_takes_every_global_step_once():
    assert fip.round_plan(3, 10, 0) == [range(0, 10), range(10, 20), range(20, 30)]
    plan = fip.round_plan(2, 10, 3)  # post-local SGD: one step per round until g = 3, then H
    assert plan == [range(0, 1), range(1, 2), range(2, 3), range(3, 13), range(13, 20)]
    assert [g for r in fip.round_plan(7, 5, 12) for g in r] == list(range(35))


def test_batches_depend_on_the_global_step_not_the_round_length():
    seeds = {g: fip.batch_of(1, 0, g) for g in range(120)}
    assert seeds[0][0] == seeds[49][0] != seeds[50][0] and [seeds[g][1] for g in (0, 49, 50, 51)] == [0, 49, 0, 1]
    assert fip.batch_of(1, 0, 7) != fip.batch_of(1, 1, 7) != fip.batch_of(2, 1, 7)
