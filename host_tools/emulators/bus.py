"""A multi-drop RS-485 bus on one pty: several emulated instruments answer the firmware's requests.

The firmware opens `bus.path` (the pty's slave side, raw mode). The bus runs one thread that reads the
master side with a selector, cuts requests by their Modbus length, hands each to the instrument with
that address (unknown address or broadcast: silence) and writes replies on a schedule: optional byte
pacing at the bus baud, late replies, chunked replies. Nothing here sleeps for synchronisation: tests
wait on `wait_for(predicate)`, which is woken by every served request.
"""

import os
import selectors
import threading
import time
import tty

from host_tools.emulators.instruments import Instrument
from host_tools.emulators.waiting import wait_on
from protocols.modbus.errors import ModbusError
from protocols.modbus.host import BROADCAST
from protocols.modbus.slave import expected_request_length


def char_time(baud, parity="N", stop_bits=1):
    """Seconds one character occupies on the wire (start + 8 data + parity + stop bits)."""
    return (1 + 8 + (0 if parity == "N" else 1) + stop_bits) / float(baud)


class EmulatedBus:
    def __init__(self, name, instruments, clock, baud=9600, parity="N", stop_bits=1, pacing=False,
                 response_delay_s=0.0):
        self.name = name
        self.clock = clock
        self.instruments = {}
        for inst in instruments:
            self.instruments[inst.address] = inst
        self.char_s = char_time(baud, parity, stop_bits)
        self.pacing = pacing
        self.response_delay_s = response_delay_s
        self.log = []  # one dict per served request (see Instrument.handle)
        self.counters = {"rx_bytes": 0, "tx_bytes": 0, "requests": 0, "unknown_address": 0,
                         "bad_requests": 0, "dropped_tx": 0}
        self._cond = threading.Condition()
        self._out = []  # [(due real time, bytes)] kept sorted
        self._buf = bytearray()
        self._last_rx = 0.0
        self._thread = None
        self._stop = False
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        tty.setraw(self.master)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._wake_r, self._wake_w = os.pipe()

    # ---- life cycle ---------------------------------------------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="bus-" + self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- queries for tests --------------------------------------------------------------------
    def wait_for(self, predicate, timeout):
        """Waits until predicate(self) is true (re-checked after every served request); returns it."""
        return wait_on(self._cond, lambda: predicate(self), timeout, 0.5)

    def entries(self, device=None, fault=None):
        with self._cond:
            return [e for e in self.log if (device is None or e["device"] == device)
                    and (fault is None or e["fault"] == fault)]

    # ---- the loop -----------------------------------------------------------------------------
    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.master, selectors.EVENT_READ, "pty")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        gap = max(0.02, 3.5 * self.char_s)
        while not self._stop:
            now = time.monotonic()
            timeout = 0.5
            if self._out:
                timeout = max(0.0, self._out[0][0] - now)
            if self._buf:
                timeout = min(timeout, max(0.0, self._last_rx + gap - now))
            for key, _ in sel.select(timeout):
                if key.data == "wake":
                    os.read(self._wake_r, 64)
                    continue
                try:
                    data = os.read(self.master, 512)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""  # EIO: nobody has the slave open right now
                if data:
                    self.counters["rx_bytes"] += len(data)
                    self._buf += data
                    self._last_rx = time.monotonic()
                    self._frames(self._last_rx)
            now = time.monotonic()
            if self._buf and now - self._last_rx >= gap:
                # An idle line ends a frame: whatever is left is an incomplete or unknown request.
                self.counters["bad_requests"] += 1
                self._buf = bytearray()
            while self._out and self._out[0][0] <= now:
                _, chunk = self._out.pop(0)
                try:
                    os.write(self.master, chunk)
                    self.counters["tx_bytes"] += len(chunk)
                except OSError:
                    self.counters["dropped_tx"] += 1
        sel.close()

    def _frames(self, now):
        while self._buf:
            try:
                want = expected_request_length(self._buf)
            except ModbusError:
                return  # unknown function: wait for the line to go idle, then drop it
            if want == 0 or len(self._buf) < want:
                return
            frame = bytes(self._buf[:want])
            del self._buf[:want]
            self._serve(frame, now)

    def _serve(self, frame, now):
        self.counters["requests"] += 1
        inst = self.instruments.get(frame[0])
        if inst is None and frame[0] != BROADCAST:
            self.counters["unknown_address"] += 1
            return
        targets = [inst] if inst is not None else list(self.instruments.values())
        sim_t = self.clock.now()
        for target in targets:
            try:
                reply = target.handle(frame, sim_t, time.time())
            except ModbusError:
                self.counters["bad_requests"] += 1
                continue
            reply.entry["bus"] = self.name
            if reply.data is not None:
                self._schedule(reply, len(frame), now)
            with self._cond:
                self.log.append(reply.entry)
                self._cond.notify_all()

    def _schedule(self, reply, request_len, now):
        data = reply.data
        t = now + self.response_delay_s + reply.delay_s
        pieces = []
        if reply.chunks > 1:
            step = max(1, -(-len(data) // reply.chunks))
            for i in range(0, len(data), step):
                pieces.append(data[i:i + step])
        else:
            pieces.append(data)
        if self.pacing:
            # The request took its wire time to arrive and the reply starts after a 3.5-character gap;
            # then bytes leave in small groups at the line rate.
            t += (request_len + 3.5) * self.char_s
        out = []
        for n, piece in enumerate(pieces):
            if n:
                t += reply.gap_s
            if self.pacing:
                for i in range(0, len(piece), 4):
                    group = piece[i:i + 4]
                    t += len(group) * self.char_s
                    out.append((t, group))
            else:
                out.append((t, piece))
        self._out.extend(out)
        self._out.sort(key=lambda x: x[0])


def build_buses(site, scenario, clock, pacing=False, seed=0):
    """{uart number: EmulatedBus} for every bus of a site config, instruments driven by the scenario."""
    buses = {}
    for bus in site["buses"]:
        insts = []
        for dev in bus["devices"]:
            insts.append(Instrument(dev["name"], dev["template"], dev["address"],
                                    scenario.device(dev["name"]), scenario.start, seed=seed))
        buses[bus["uart"]] = EmulatedBus(bus["name"], insts, clock, baud=bus.get("baud", 9600),
                                         parity=bus.get("parity", "N"), stop_bits=bus.get("stop_bits", 1),
                                         pacing=pacing)
    return buses
