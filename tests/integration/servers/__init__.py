"""Real servers on loopback for integration tests: the reference Bluesky PDS and ``mastodon-mock``.

The fixtures live in ``tests/integration/conftest.py``; the servers' own docstrings (``pds.py``,
``mastodon.py``) describe what each one offers. Import the types for annotations with
``from .servers import PdsServer, MastodonServer`` (relative: ``tests/integration`` is a package).
"""

from ._process import FIXTURE_HEADER, ServerStartError
from .fault_proxy import FaultProxy
from .mastodon import Fault, MastodonAccount, MastodonServer
from .pds import Account, PdsInstallError, PdsServer, ensure_installed

__all__ = [
    "FIXTURE_HEADER",
    "Account",
    "Fault",
    "FaultProxy",
    "MastodonAccount",
    "MastodonServer",
    "PdsInstallError",
    "PdsServer",
    "ServerStartError",
    "ensure_installed",
]
