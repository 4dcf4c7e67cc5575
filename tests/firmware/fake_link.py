"""A TCP link stand-in for the uplink tests: `write` goes to a scripted platform's `received(link, data)`,
what the platform `push`es comes back through `read`. One asyncio loop, no sockets, no sleeps."""

import asyncio


class Clock:
    """Sim epoch seconds the test sets by hand."""

    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t

    def set(self, t):
        self.t = t


class FakeLink:
    def __init__(self, platform):
        self.platform = platform
        self.rx = []
        self.ev = asyncio.Event()
        self.closed = False

    async def read(self, n):
        while not self.rx and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        return self.rx.pop(0) if self.rx else b""

    def write(self, data):
        self.platform.received(self, bytes(data))

    async def drain(self):
        pass

    def push(self, data, chunk=None):
        """Queues bytes for `read`, in pieces of `chunk` bytes when given (a reply split by TCP)."""
        if chunk:
            for i in range(0, len(data), chunk):
                self.rx.append(data[i : i + chunk])
        else:
            self.rx.append(data)
        self.ev.set()

    def close(self):
        self.closed = True
        self.ev.set()

    async def wait_closed(self):
        pass
