"""HJ 212 platform receiver (上位机): asyncio server, SQLite store, device registry and the
`emlog platform serve / send / export` commands.

`PlatformServer` is usable in-process by the simulator and HIL tests; see docs/platform.md.
"""

from host_tools.platform.registry import Device, Registry
from host_tools.platform.store import Store

__all__ = ["Device", "PlatformServer", "Registry", "Store"]


def __getattr__(name):
    # Lazy: the CLI imports this package on every `emlog` run; asyncio only when a server is built.
    if name == "PlatformServer":
        from host_tools.platform.server import PlatformServer

        return PlatformServer
    raise AttributeError(name)
