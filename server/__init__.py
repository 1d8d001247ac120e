"""The Starlette relay for federated training (protocol: site_src/federated-protocol.md).

`create_app(settings, clock=None)` builds the ASGI app; `run(host, port, state_dir)` serves it.
"""

from .app import create_app
from .run import run
from .settings import RelaySettings

__all__ = ["RelaySettings", "create_app", "run"]
