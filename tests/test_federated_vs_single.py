"""benchmarks/federated_vs_single.py: --paired recomputes the seeds the relay gave each client."""

import importlib.util
from pathlib import Path

from pyscript_app.config import ModelConfig
from pyscript_app.reference.init import init_params
from server.protocol import build_session_config
from server.session import Session
from server.settings import RelaySettings
from server.storage import CheckpointStore

REPO = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("federated_vs_single", REPO / "benchmarks/federated_vs_single.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paired_seeds_are_the_ones_the_relay_sends_each_client(tmp_path):
    cfg = build_session_config({"model": "nano", "dataset": "names", "quorum": 2}, RelaySettings(), init_seed=5)
    session = Session.create(cfg, init_params(ModelConfig.from_dict(cfg.model_config), 5), max_clients=4, now=0.0)[0]
    ids = sorted(session.join(name, None, 0.0)[0] for name in ("fed-0", "fed-1"))
    header, arrays = session.checkpoint()
    CheckpointStore(tmp_path).save(session.session_id, header, arrays)
    seeds = _module().paired_seeds(str(tmp_path), session.session_id, rounds=3, wall=1.0)
    expected = []
    for r in range(3):
        session.round = r
        expected.append([session._seed(cid) for cid in ids])
    assert seeds == expected and len({s for row in seeds for s in row}) == 6
