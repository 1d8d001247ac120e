"""The federated lesson's Python (PyScript worker). Logic: lessons/federated.py; HTML: federated_view.py.

Boot: the traffic table for every preset, then the worked example once. "Compute" re-runs it with
the reader's token counts, aggregator, outer learning rate, momentum, local steps and rounds.
"""

from __future__ import annotations

from dataclasses import replace

from pyscript_app.browser.lesson_dom import (by_testid, enable, float_value, int_value, on, set_html, set_text,
                                             start, status, value_of)
from pyscript_app.federated.outer import OUTER_DEFAULTS
from pyscript_app.lessons.federated import DEFAULT_CLIENTS, Outer, run_rounds, target, traffic_table_rows
from pyscript_app.lessons.federated_view import rounds_table, traffic_table, vec

# The relay's defaults for each aggregator (server/protocol.py): outer lr, outer momentum.
RELAY_DEFAULTS = OUTER_DEFAULTS  # the relay's own (federated/outer.py)
INPUTS = ("aggregator", "outer-lr", "outer-momentum", "local-steps", "inner-lr", "round-count", "compute-button",
          *(f"tokens-{c.name}" for c in DEFAULT_CLIENTS))


def read_clients():
    return [replace(c, tokens=int_value(f"tokens-{c.name}", 1, 10**9, c.tokens)) for c in DEFAULT_CLIENTS]


def compute() -> None:
    status("busy", "Computing…")
    clients = read_clients()
    aggregator = value_of("aggregator") if value_of("aggregator") in RELAY_DEFAULTS else "fedavg"
    outer = Outer(aggregator, float_value("outer-lr", 1e-3, 10.0, 1.0), float_value("outer-momentum", 0.0, 0.999, 0.0))
    steps = int_value("local-steps", 1, 100, 2)
    inner_lr = float_value("inner-lr", 1e-3, 1.0, 0.1)
    n_rounds = int_value("round-count", 1, 50, 10)
    start_w = [0.0, 0.0]
    rounds = run_rounds(start_w, clients, outer, n_rounds, steps, inner_lr)
    set_text("target", vec(target(clients)))
    set_html("rounds-table", rounds_table(clients, rounds))
    # The same clients under both aggregators at the relay's defaults, for comparison.
    compare = []
    for name, (lr, mu) in RELAY_DEFAULTS.items():
        last = run_rounds(start_w, clients, Outer(name, lr, mu), n_rounds, steps, inner_lr)[-1]
        compare.append(f"{name} (outer lr {lr:g}, momentum {mu:g}): {last.distance:.4g}")
    set_text("compare", f"Distance to the target after {n_rounds} rounds: " + "; ".join(compare) + ".")
    result = by_testid("final")
    result.setAttribute("data-distance", f"{rounds[-1].distance:.6g}")
    result.textContent = (f"After {n_rounds} rounds of {aggregator}: W = {vec(rounds[-1].end)}, "
                          f"distance to the target {rounds[-1].distance:.4g}.")
    status("ready", "Ready.")


def aggregator_changed() -> None:
    lr, mu = RELAY_DEFAULTS.get(value_of("aggregator"), RELAY_DEFAULTS["fedavg"])
    by_testid("outer-lr").value = str(lr)
    by_testid("outer-momentum").value = str(mu)


async def boot() -> None:
    set_html("traffic", traffic_table(traffic_table_rows()))
    compute()
    on("compute-button", "click", compute)
    on("aggregator", "change", aggregator_changed)
    enable(*INPUTS)


start(boot)
