"""The outer step's defaults per aggregator: what a session gets when it names no outer lr or momentum.

Shared by the relay (server/protocol.py builds a session's config with them) and the federated lesson
(browser/lesson_federated.py compares the aggregators at them), so the lesson shows the relay's own.
Pure Python.

DiLoCo's momentum is not the paper's 0.9 (8 workers, H = 500): with two clients and H = 10 on this
project's small models 0.7 / 0.5 does best (site_src/federated-protocol.md; measured: benchmarks/README.md).
In a steady state Nesterov multiplies the mean delta by outer_lr / (1 - momentum): 7 with the paper's,
1.4 with these.
"""

from __future__ import annotations

AGGREGATORS = ("fedavg", "diloco")
OUTER_DEFAULTS = {"fedavg": (1.0, 0.0), "diloco": (0.7, 0.5)}  # aggregator -> (outer lr, momentum)
