"""The Starlette relay for federated training (protocol: site_src/federated-protocol.md).

`create_app(settings, clock=None)` builds the ASGI app; `run(host, port, state_dir, redis_url=None)`
serves it: one process alone (hub.Relay), or, with a Redis URL, one of several processes sharing
their sessions (cluster.ClusterRelay).
"""

from .app import create_app
from .run import run
from .settings import RelaySettings

__all__ = ["RelaySettings", "create_app", "run"]
