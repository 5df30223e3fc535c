"""Real servers on loopback for integration tests: the reference Bluesky PDS, a Bluesky network with the
reference AppView, ``mastodon-mock`` and PostgreSQL.

The fixtures live in ``tests/integration/conftest.py`` (``postgres`` in ``tests/conftest.py``); the servers' own
docstrings (``pds.py``, ``appview.py``, ``mastodon.py``, ``postgres.py``) describe what each one offers. The Node
packages are pinned by ``package.json`` + ``package-lock.json`` (the PDS) and ``appview/package.json`` +
``appview/package-lock.json`` (PLC + PDS + AppView), each installed into its own cache folder. A stand-in for
Bluesky's video service runs in-process (``videoservice.py``). Import the types for annotations with
``from .servers import PdsServer, MastodonServer`` (relative: ``tests/integration`` is a package).
"""

from ._process import FIXTURE_HEADER, ServerStartError
from .appview import AppViewNetwork
from .fault_proxy import FaultProxy
from .mastodon import Fault, MastodonAccount, MastodonServer
from .pds import Account, PdsInstallError, PdsServer, ensure_installed

__all__ = [
    "FIXTURE_HEADER",
    "Account",
    "AppViewNetwork",
    "Fault",
    "FaultProxy",
    "MastodonAccount",
    "MastodonServer",
    "PdsInstallError",
    "PdsServer",
    "ServerStartError",
    "ensure_installed",
]
