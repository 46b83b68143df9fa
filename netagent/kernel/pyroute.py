"""The pyroute2 classes vxswarm uses, imported without pyroute2's package __init__.

`import pyroute2` imports every family pyroute2 speaks (NDB over sqlite, IPDB, wireless,
WireGuard, devlink, 9p and more, with unittest.mock): about 6 MB of every daemon's memory
and a tenth of a second of its start-up, for the four names below. So, unless pyroute2
was imported already, `pyroute2` is registered as a bare package (its path, nothing run)
and the submodules that define these names are imported from it: they import what they
need themselves. Every module of vxswarm imports pyroute2's names from here.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _bare_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("pyroute2 is not installed")
    package = types.ModuleType("pyroute2")
    package.__spec__ = spec
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    sys.modules["pyroute2"] = package


_bare_package()

from pyroute2 import netns  # noqa: E402
from pyroute2.conntrack import Conntrack  # noqa: E402
from pyroute2.iproute import IPRoute, NetNS  # noqa: E402
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402

__all__ = ["Conntrack", "IPRoute", "NetNS", "NetlinkError", "netns"]
