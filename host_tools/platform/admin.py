"""Control channel of a running `emlog platform serve`: JSON lines over TCP bound to loopback only.

`emlog platform send` / `emlog platform list` connect to it. One request per connection:

    -> {"op": "send", "mn": "...", "cn": "1062", "cp": [["RtdInterval", "30"]], "flag": 5, "timeout": 10}
    <- {"event": "sent", "frame": "##0101QN=..."}
    <- {"event": "reply", "cn": "9011", "frame": "##...", "fields": {"QnRtn": "1"}}   (one per reply)
    <- {"event": "done", "result": "ExeRtn=1"}          or {"event": "error", "message": "..."}

    -> {"op": "list"}
    <- {"event": "connections", "connections": [{"mn": ..., "peer": ..., "frames": ..., ...}]}

Anyone who can open a loopback socket on this machine can send commands to loggers: run the server on a
machine you control (docs/platform.md).
"""

import asyncio
import ipaddress
import json

from host_tools.platform import wire

MAX_LINE = 64 * 1024


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminServer:
    def __init__(self, platform, host="127.0.0.1", port=0):
        if not is_loopback(host):
            raise ValueError("the admin channel listens on loopback only, not %s" % host)
        self.platform = platform
        self.host = host
        self.port = port
        self._server = None

    async def start(self):
        self._server = await asyncio.start_server(self._client, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _client(self, reader, writer):
        def emit(obj):
            writer.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                req = json.loads(line)
                if not isinstance(req, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                emit({"event": "error", "message": "bad request: %s" % exc})
                return
            op = req.get("op")
            if op == "list":
                emit({"event": "connections", "connections": self.platform.snapshot()})
            elif op == "send":
                await self._send(req, emit, writer)
            else:
                emit({"event": "error", "message": "unknown op %r" % (op,)})
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                await writer.drain()
            except ConnectionError:
                pass
            writer.close()

    async def _send(self, req, emit, writer):
        try:
            mn = str(req["mn"])
            cn = str(req["cn"])
            cp = [(str(k), str(v)) for k, v in req.get("cp", [])]
            flag = int(req.get("flag", 5))
            timeout = float(req.get("timeout", 10))
        except (KeyError, TypeError, ValueError) as exc:
            emit({"event": "error", "message": "bad send request: %r" % (exc,)})
            return
        try:
            session = await self.platform.request(mn, cn, cp, flag=flag, timeout=timeout)
        except (LookupError, RuntimeError, ValueError) as exc:
            emit({"event": "error", "message": str(exc.args[0] if exc.args else exc)})
            return
        emit({"event": "sent", "frame": session.sent.decode("utf-8", "replace").rstrip("\r\n")})
        await writer.drain()
        async for packet in session:
            emit(
                {
                    "event": "reply",
                    "cn": packet.cn,
                    "frame": wire.text(packet),
                    "fields": dict(wire.items(packet)),
                }
            )
            await writer.drain()
        emit({"event": "done", "result": session.result})
