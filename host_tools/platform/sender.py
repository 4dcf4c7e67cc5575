"""A lightweight emulated logger (HJ 212 client) for load tests, benchmarks and protocol tests.

Not the firmware: it uploads frames it is told to, waits for the 9014 when the frame asks for one, and
(optionally) answers platform requests with 9011/[response]/9012 like Appendix C. All parsing and
framing comes from protocols.hj212.
"""

import asyncio

from protocols.hj212.host import build
from protocols.hj212.wire import StreamDecoder


def qn_for(i, base="20240315"):
    """A deterministic, unique-per-i QN: base date + i as hhmmss + milliseconds."""
    i = int(i)
    ms = i % 1000
    s = i // 1000
    return "%s%02d%02d%02d%03d" % (base, s // 3600 % 24, s // 60 % 60, s % 60, ms)


def datatime_for(minute_index, base="20240315"):
    """DataTime of the minute record number `minute_index` starting at base 00:00 (wraps per day)."""
    m = int(minute_index) % 1440
    return "%s%02d%02d00" % (base, m // 60, m % 60)


class LightLogger:
    def __init__(self, mn, pw="123456", st="31", answer_requests=True):
        self.mn = mn
        self.pw = pw
        self.st = st
        self.answer_requests = answer_requests
        self.reader = self.writer = None
        self.decoder = StreamDecoder()
        self.inbox = asyncio.Queue()  # every packet/error from the platform, in order
        self.requests = []  # platform requests answered
        self.history = {}  # (cn, datatime) -> cp groups, served on history requests
        self._task = None
        self._answering = set()
        self._seq = 0

    async def connect(self, host, port):
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self._task = asyncio.ensure_future(self._read())
        return self

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        for task in self._answering:
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, ConnectionError):
                pass

    async def _read(self):
        while True:
            data = await self.reader.read(4096)
            if not data:
                for item in self.decoder.flush():  # e.g. half a reply before the link dropped
                    await self.inbox.put(item)
                await self.inbox.put(None)
                return
            for item in self.decoder.feed(data):
                if item.ok and self.answer_requests and item.cn not in ("9011", "9012", "9013", "9014"):
                    # its own task: a history answer waits for 9014s that this loop delivers
                    self._answering.add(asyncio.ensure_future(self._answer(item)))
                else:
                    await self.inbox.put(item)

    def packet(self, cn, cp, ack=True, qn=None, pw=None, mn=None, st=None, flag=None):
        self._seq += 1
        return build(
            st or self.st,
            cn,
            pw or self.pw,
            mn or self.mn,
            cp,
            qn=qn or qn_for(self._seq),
            ack=ack,
            flag=flag,
        )

    def record_frame(self, cn, datatime, values, ack=True, qn=None):
        """values: {code: {field: text}} -> the encoded upload frame."""
        cp = [[("DataTime", datatime)]]
        for code in values:
            cp.append([(code + "-" + f, v) for f, v in values[code].items()])
        return self.packet(cn, cp, ack=ack, qn=qn).encode()

    def send_raw(self, data):
        self.writer.write(data)

    async def reply(self, timeout=10.0):
        """Next item from the platform (Packet or Hj212Error), None on EOF."""
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def upload(self, frame, timeout=10.0):
        """Send one frame and wait for the platform's reply to it."""
        self.writer.write(frame)
        await self.writer.drain()
        return await self.reply(timeout)

    async def _answer(self, req):
        """Appendix C behaviour for the requests the platform may send (enough for tests)."""
        self.requests.append(req)
        out = []

        def sys_reply(cn, key=None, value=None):
            cp = [[(key, value)]] if key else []
            return build("91", cn, self.pw, self.mn, cp, qn=req.qn, flag=4).encode()

        if req.cn in ("2012", "2022"):
            self.writer.write(sys_reply("9013"))
            return
        out.append(sys_reply("9011", "QnRtn", "1"))
        exe = "1"
        if req.cn == "1011":
            out.append(
                build(
                    self.st, "1011", self.pw, self.mn, [[("SystemTime", "20240315120000")]], qn=req.qn, flag=4
                ).encode()
            )
        elif req.cn == "1061":
            out.append(
                build(
                    self.st, "1061", self.pw, self.mn, [[("RtdInterval", "30")]], qn=req.qn, flag=4
                ).encode()
            )
        elif req.cn in ("2051", "2061", "2031"):
            begin, end = req.get("BeginTime"), req.get("EndTime")
            keys = sorted(k for k in self.history if k[0] == req.cn and begin <= k[1] <= end)
            if not keys:
                exe = "100"
            self.writer.write(out.pop())
            for cn, dt in keys:
                frame = self.packet(cn, [[("DataTime", dt)]] + self.history[(cn, dt)], ack=True).encode()
                self.writer.write(frame)
                ack = await self.inbox.get()  # the platform's 9014 (C.48: next record only after it)
                if ack is None or not ack.ok or ack.cn != "9014":
                    return
        elif req.cn == "1072":
            new = req.get("NewPW")
            out.append(sys_reply("9012", "ExeRtn", exe))
            for frame in out:
                self.writer.write(frame)
            self.pw = new
            return
        out.append(sys_reply("9012", "ExeRtn", exe))
        for frame in out:
            self.writer.write(frame)
