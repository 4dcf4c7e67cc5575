"""An emulated ESP32 / ESP32-S3 serial bootloader on a pty, for flashing tests with the real esptool.

    python -m host_tools.emulators.esp32_rom --flash flash.bin --chip esp32     # prints the pty path

or in-process: `with Esp32RomEmulator("flash.bin", chip="esp32") as emu: ... emu.port ...`.

What it models (from esptool's loader and target classes, read to learn the protocol):
- SLIP framing; requests `<BBHI` (dir 0, op, len, checksum) and responses (dir 1, op, len, value) +
  data + status. The ROM appends 4 status bytes (status, error, 2 reserved), the stub 2 (error, 0).
- ROM download mode: SYNC (8 replies), READ_REG / WRITE_REG on a small register file holding the chip
  magic, eFuses (chip revision, package, MAC), UART clock divider and an SPI flash controller that runs
  RDID / SFDP / status commands; GET_SECURITY_INFO (ESP32-S3 reports chip id 9; ESP32 ROM rejects it as
  unsupported); SPI_ATTACH, SPI_SET_PARAMS, FLASH_BEGIN/DATA/END (erase first, 0x400 blocks),
  FLASH_DEFL_*, SPI_FLASH_MD5 (hex), READ_FLASH_SLOW, CHANGE_BAUDRATE, MEM_BEGIN/DATA/END.
- The flasher stub: after MEM_END with an entry point inside the uploaded RAM segments the emulator
  greets with "OHAI" and behaves as the stub: 2 status bytes, raw MD5, erase-as-you-write,
  ERASE_FLASH, ERASE_REGION, READ_FLASH with its ACK flow control, RUN_USER_CODE.
- NOR flash semantics: writing only clears bits (new = old AND data), so a client that forgets to erase
  produces wrong data, as on a real chip. Erased flash is 0xFF.
- Every byte received on the link is counted (total and per command), for compression figures.

Resets: a pty has no DTR/RTS lines (TIOCMSET fails with ENOTTY), so esptool's default reset only prints a
warning and carries on, and `--before no-reset` is the quiet equivalent; the emulated chip is always
waiting in download mode. When the host closes the port (all slave fds closed: POLLHUP on the master)
the emulator does what the auto-reset circuit of a real board does on the next connection: it drops
the stub and any half-finished flash session and returns to the ROM loader. After a ROM FLASH_END /
FLASH_DEFL_END asking to run the app, or RUN_USER_CODE, it ignores the link until such a reset.
"""

import argparse
import errno
import hashlib
import json
import os
import select
import signal
import struct
import sys
import threading
import time
import tty
import zlib

SECTOR = 0x1000
CHECKSUM_SEED = 0xEF

# Opcodes (ESPLoader.ESP_CMDS).
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END, SPI_FLASH_MD5 = 0x10, 0x11, 0x12, 0x13
GET_SECURITY_INFO = 0x14
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3

OP_NAMES = {
    FLASH_BEGIN: "FLASH_BEGIN", FLASH_DATA: "FLASH_DATA", FLASH_END: "FLASH_END", MEM_BEGIN: "MEM_BEGIN",
    MEM_END: "MEM_END", MEM_DATA: "MEM_DATA", SYNC: "SYNC", WRITE_REG: "WRITE_REG", READ_REG: "READ_REG",
    SPI_SET_PARAMS: "SPI_SET_PARAMS", SPI_ATTACH: "SPI_ATTACH", READ_FLASH_SLOW: "READ_FLASH_SLOW",
    CHANGE_BAUDRATE: "CHANGE_BAUDRATE", FLASH_DEFL_BEGIN: "FLASH_DEFL_BEGIN",
    FLASH_DEFL_DATA: "FLASH_DEFL_DATA",
    FLASH_DEFL_END: "FLASH_DEFL_END", SPI_FLASH_MD5: "SPI_FLASH_MD5", GET_SECURITY_INFO: "GET_SECURITY_INFO",
    ERASE_FLASH: "ERASE_FLASH", ERASE_REGION: "ERASE_REGION", READ_FLASH: "READ_FLASH",
    RUN_USER_CODE: "RUN_USER_CODE",
}

# ROM error codes (second status byte, status byte = 1) and stub error codes (first status byte).
ROM_INVALID_MSG, ROM_BAD_RESULT, ROM_CHECKSUM, ROM_FLASH_WRITE, ROM_READ_LEN, ROM_DEFLATE = (
    0x05, 0x06, 0x07, 0x08, 0x0A, 0x0B)
STUB_BAD_LEN, STUB_BAD_CHECKSUM, STUB_BAD_BLOCKSIZE, STUB_INVALID_CMD = 0xC0, 0xC1, 0xC2, 0xC3
STUB_NOT_IN_FLASH_MODE, STUB_INFLATE, STUB_NOT_ENOUGH, STUB_TOO_MUCH = 0xC6, 0xC7, 0xC8, 0xC9

FLASH_SIZES = {"2MB": 2 << 20, "4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}

# SFDP table of a generic JEDEC NOR flash: signature "SFDP", rev 1.6, one parameter header (basic table
# at 0x30). esptool reads the signature to check the flash is attached, and byte 0x10 for the XMC fix.
_SFDP = bytearray(b"\xff" * 0x80)
_SFDP[0:16] = b"SFDP\x06\x01\x00\xff\x00\x06\x01\x10\x30\x00\x00\xff"


class Chip:
    """Per-chip facts the loader protocol exposes (register addresses are the chips' documented ones)."""

    def __init__(self, key, name, magic, spi_base, spi_offsets, addr_msb, uart_clkdiv, security_info,
                 default_flash, registers, mac_words):
        self.key = key
        self.name = name
        self.magic = magic
        self.spi_base = spi_base
        self.spi_usr, self.spi_usr1, self.spi_usr2, self.spi_mosi_dlen, self.spi_miso_dlen, self.spi_w0 = (
            spi_offsets)
        self.addr_msb = addr_msb  # ESP32 expects SPI addresses left-aligned in the 32-bit ADDR register
        self.uart_clkdiv = uart_clkdiv
        self.security_info = security_info  # chip id reported by GET_SECURITY_INFO, None = unsupported
        self.default_flash = default_flash
        self.registers = registers
        self.mac_words = mac_words  # function(mac bytes) -> {addr: value}


def _esp32_mac_words(mac):
    # eFuse BLK0 words 1 and 2: word2 low 16 bits = MAC bytes 0-1, word1 = bytes 2-5, CRC in word2[23:16].
    crc = _crc8(mac)
    return {0x3FF5A004: struct.unpack(">I", mac[2:6])[0],
            0x3FF5A008: (crc << 16) | struct.unpack(">H", mac[0:2])[0]}


def _esp32s3_mac_words(mac):
    # eFuse BLOCK1 words 0 and 1: word0 = MAC bytes 2-5, word1 low 16 bits = bytes 0-1.
    return {0x60007044: struct.unpack(">I", mac[2:6])[0], 0x60007048: struct.unpack(">H", mac[0:2])[0]}


def _crc8(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc >> 1) ^ 0x8C) if crc & 1 else crc >> 1
    return crc


CHIPS = {
    "esp32": Chip(
        "esp32", "ESP32", magic=0x00F01D83, spi_base=0x3FF42000,
        spi_offsets=(0x1C, 0x20, 0x24, 0x28, 0x2C, 0x80), addr_msb=True, uart_clkdiv=0x3FF40014,
        security_info=None, default_flash="4MB", mac_words=_esp32_mac_words,
        registers={
            # ESP32-D0WD-V3 rev 3.0: eFuse word3 pkg=1 (bits 9-11) + rev bit0 (bit 15); word5 rev bit1
            # (bit 20); APB_CTL_DATE bit 31 = rev bit2. word4 CK8M = 200 with RTC cal 512 -> 40 MHz xtal.
            0x3FF5A00C: (1 << 9) | (1 << 15),
            0x3FF5A010: 200,
            0x3FF5A014: 1 << 20,
            0x3FF6607C: 0x80000000 | 0x16042000,
            0x3FF5F06C: 512 << 7,
            0x3FF44038: 0x13,  # GPIO strap: download boot
        },
    ),
    "esp32s3": Chip(
        "esp32s3", "ESP32-S3", magic=0x00000009, spi_base=0x60002000,
        spi_offsets=(0x18, 0x1C, 0x20, 0x24, 0x28, 0x58), addr_msb=False, uart_clkdiv=0x60000014,
        security_info=9, default_flash="8MB", mac_words=_esp32s3_mac_words,
        registers={
            # BLOCK1 word3: minor revision 2 (bits 18-20), package QFN56 (bits 21-23 = 0).
            0x60007050: 2 << 18,
            0x60004038: 0x00,  # GPIO strap: SPI-boot bit (3) clear = download boot
        },
    ),
}


class SlipDecoder:
    """Incremental SLIP decoder; bytes outside frames are ignored (as the ROM does)."""

    def __init__(self):
        self.frame = None
        self.escape = False

    def reset(self):
        self.frame = None
        self.escape = False

    def feed(self, data):
        frames = []
        for b in data:
            if self.frame is None:
                if b == 0xC0:
                    self.frame = bytearray()
                continue
            if self.escape:
                self.escape = False
                if b == 0xDC:
                    self.frame.append(0xC0)
                elif b == 0xDD:
                    self.frame.append(0xDB)
                else:  # protocol violation: drop the frame
                    self.frame = None
                continue
            if b == 0xDB:
                self.escape = True
            elif b == 0xC0:
                if self.frame:
                    frames.append(bytes(self.frame))
                    self.frame = None
                # an empty frame (C0 C0) is a frame boundary: stay inside a new frame
                else:
                    self.frame = bytearray()
            else:
                self.frame.append(b)
        return frames


def slip_encode(data):
    return b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


def checksum(data):
    state = CHECKSUM_SEED
    for b in data:
        state ^= b
    return state


class FlashImage:
    """Emulated NOR flash backed by a file (a shorter or missing file reads as erased 0xFF)."""

    def __init__(self, path, size):
        self.path = str(path)
        self.size = size
        exists = os.path.exists(self.path)
        current = os.path.getsize(self.path) if exists else 0
        if current > size:
            raise ValueError("flash file %s is %d bytes, larger than the %d-byte flash"
                             % (path, current, size))
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        data = bytearray(os.pread(self.fd, current, 0)) if current else bytearray()
        if current < size:
            pad = b"\xff" * (size - current)
            os.pwrite(self.fd, pad, current)
            data += pad
        self.data = data

    def read(self, offset, length):
        return bytes(self.data[offset:offset + length])

    def erase(self, offset, length):
        self.data[offset:offset + length] = b"\xff" * length
        os.pwrite(self.fd, b"\xff" * length, offset)

    def write(self, offset, chunk):
        # NOR programming can only clear bits.
        n = len(chunk)
        old = self.data[offset:offset + n]
        if old.count(0xFF) == n:
            new = bytes(chunk)
        else:
            new = (int.from_bytes(old, "big") & int.from_bytes(chunk, "big")).to_bytes(n, "big")
        self.data[offset:offset + len(chunk)] = new
        os.pwrite(self.fd, new, offset)

    def md5(self, offset, length):
        return hashlib.md5(memoryview(self.data)[offset:offset + length]).digest()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Reject(Exception):
    """A request the emulated loader answers with a failure status."""

    def __init__(self, rom_code, stub_code):
        super().__init__(rom_code, stub_code)
        self.rom_code = rom_code
        self.stub_code = stub_code


class Esp32RomEmulator:
    """An ESP32 / ESP32-S3 serial bootloader (ROM + flasher stub) answering on a pseudo-terminal."""

    def __init__(self, flash_path, chip="esp32", flash_size=None, mac="24:0a:c4:12:34:56", trace=False):
        if chip not in CHIPS:
            raise ValueError("unknown chip %r; use one of %s" % (chip, ", ".join(sorted(CHIPS))))
        self.chip = CHIPS[chip]
        size_name = flash_size or self.chip.default_flash
        if size_name not in FLASH_SIZES:
            raise ValueError("flash size %r is not one of %s" % (size_name, ", ".join(FLASH_SIZES)))
        self.flash = FlashImage(flash_path, FLASH_SIZES[size_name])
        self.mac = bytes(int(x, 16) for x in mac.split(":"))
        if len(self.mac) != 6:
            raise ValueError("MAC must have 6 bytes: %r" % mac)
        self.trace = trace
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        tty.setraw(slave)
        os.close(slave)  # so the master sees POLLHUP whenever no host has the port open
        os.set_blocking(self.master, False)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self.stats = {
            "bytes_received": 0, "bytes_sent": 0, "sessions": 0, "resets": 0,
            "commands": {}, "bytes_by_command": {}, "stub_started": 0, "errors": [],
        }
        self._reset_state()

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self):
        self._thread = threading.Thread(target=self._run, name="esp32-rom-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self.master, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.flash.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def snapshot_stats(self):
        with self._lock:
            return json.loads(json.dumps(self.stats))

    def reset_stats(self):
        with self._lock:
            for key in ("bytes_received", "bytes_sent"):
                self.stats[key] = 0
            self.stats["commands"] = {}
            self.stats["bytes_by_command"] = {}

    # ----------------------------------------------------------------------------------------- main loop

    def _reset_state(self):
        self.mode = "rom"  # "rom", "stub" or "app" (running user code: deaf until reset)
        self.decoder = SlipDecoder()
        self.regs = dict(self.chip.registers)
        self.regs[0x40001000] = self.chip.magic
        self.regs.update(self.chip.mac_words(self.mac))
        self.session = None  # active FLASH_BEGIN / FLASH_DEFL_BEGIN
        self.mem = None  # active MEM_BEGIN
        self.ram_segments = []
        self.reading = None  # active stub READ_FLASH
        self.device_baud = None
        self.flash_params_size = None
        self.connected = False

    def _run(self):
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            events = poller.poll(500)
            for fd, ev in events:
                if fd == self._wake_r:
                    return
                if ev & select.POLLIN:
                    try:
                        data = os.read(self.master, 65536)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        if exc.errno != errno.EIO:
                            raise
                        self._hangup()
                        continue
                    if not self.connected:
                        self.connected = True
                        with self._lock:
                            self.stats["sessions"] += 1
                    self._receive(data)
                elif ev & select.POLLHUP:
                    self._hangup()
                    # No host: the master keeps reporting POLLHUP, so wait before polling again.
                    self._stop.wait(0.01)

    def _hangup(self):
        if self.connected:
            with self._lock:
                self.stats["resets"] += 1
            self._reset_state()

    def _receive(self, data):
        with self._lock:
            self.stats["bytes_received"] += len(data)
        for frame in self.decoder.feed(data):
            if self.reading is not None and len(frame) == 4:
                self._read_flash_ack(frame)
                continue
            if self.mode == "app" or len(frame) < 8 or frame[0] != 0x00:
                continue
            self._dispatch(frame)

    def _send(self, data):
        frame = slip_encode(data)
        view = memoryview(frame)
        deadline = time.monotonic() + 10
        while view:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # host stopped reading
                select.select([], [self.master], [], 0.1)
            except OSError:
                return  # host went away
        with self._lock:
            self.stats["bytes_sent"] += len(frame)

    def _respond(self, op, value=0, data=b"", failure=None):
        if self.mode == "rom":
            status = bytes([1, failure.rom_code, 0, 0]) if failure else b"\x00\x00\x00\x00"
        else:
            status = bytes([failure.stub_code, 0]) if failure else b"\x00\x00"
        body = data + status
        self._send(struct.pack("<BBHI", 1, op, len(body), value) + body)

    # -------------------------------------------------------------------------------------------- commands

    def _dispatch(self, frame):
        _, op, size, chk = struct.unpack("<BBHI", frame[:8])
        payload = frame[8:]
        name = OP_NAMES.get(op, "0x%02X" % op)
        with self._lock:
            self.stats["commands"][name] = self.stats["commands"].get(name, 0) + 1
            # SLIP-framed size on the wire (escapes and delimiters included)
            wire = len(slip_encode(frame))
            self.stats["bytes_by_command"][name] = self.stats["bytes_by_command"].get(name, 0) + wire
        if self.trace:
            sys.stderr.write("emu %s %s len=%d\n" % (self.mode, name, len(payload)))
        if size != len(payload):
            self._fail(op, _Reject(ROM_INVALID_MSG, STUB_BAD_LEN),
                       "length field %d != %d" % (size, len(payload)))
            return
        handler = self._handlers().get(op)
        stub_only = (ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE)
        if handler is None or (self.mode == "rom" and op in stub_only):
            self._unsupported(op)
            return
        if self.mode == "stub" and op == READ_FLASH_SLOW:
            self._unsupported(op)
            return
        try:
            handler(op, payload, chk)
        except _Reject as rej:
            self._fail(op, rej, "%s rejected" % name)
        except (struct.error, IndexError) as exc:
            self._fail(op, _Reject(ROM_INVALID_MSG, STUB_BAD_LEN), "%s malformed: %s" % (name, exc))

    def _fail(self, op, rej, why):
        with self._lock:
            self.stats["errors"].append(why)
        self._respond(op, failure=rej)

    def _unsupported(self, op):
        if self.mode == "rom":
            # The ROM answers an unknown command with an "invalid message" reply that does not echo the
            # opcode; esptool turns that into UnsupportedCommandError.
            self._send(struct.pack("<BBHI", 1, 0x00, 4, 0) + bytes([1, ROM_INVALID_MSG, 0, 0]))
        else:
            self._respond(op, failure=_Reject(ROM_INVALID_MSG, STUB_INVALID_CMD))

    def _handlers(self):
        return {
            SYNC: self._sync, READ_REG: self._read_reg, WRITE_REG: self._write_reg,
            GET_SECURITY_INFO: self._security_info, SPI_ATTACH: self._spi_attach,
            SPI_SET_PARAMS: self._spi_set_params, CHANGE_BAUDRATE: self._change_baud,
            MEM_BEGIN: self._mem_begin, MEM_DATA: self._mem_data, MEM_END: self._mem_end,
            FLASH_BEGIN: self._flash_begin, FLASH_DATA: self._flash_data, FLASH_END: self._flash_end,
            FLASH_DEFL_BEGIN: self._flash_begin, FLASH_DEFL_DATA: self._flash_data,
            FLASH_DEFL_END: self._flash_end, SPI_FLASH_MD5: self._md5, ERASE_FLASH: self._erase_flash,
            ERASE_REGION: self._erase_region, READ_FLASH: self._read_flash,
            READ_FLASH_SLOW: self._read_flash_slow, RUN_USER_CODE: self._run_user_code,
        }

    def _sync(self, op, payload, chk):
        if payload != b"\x07\x07\x12\x20" + b"\x55" * 32:
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        if self.mode == "rom":
            self.device_baud = self._host_baud()  # the ROM auto-detects the baud rate from SYNC
        # The ROM answers every SYNC eight times with a non-zero value; the stub with value 0.
        value = 0x20120707 if self.mode == "rom" else 0
        for _ in range(8):
            self._respond(op, value=value)

    def _read_reg(self, op, payload, chk):
        (addr,) = struct.unpack("<I", payload[:4])
        self._respond(op, value=self._reg_value(addr))

    def _reg_value(self, addr):
        if addr == self.chip.uart_clkdiv:
            # APB runs from the 40 MHz crystal in the ROM and from the 80 MHz PLL once the stub runs.
            apb = 40_000_000 if self.mode == "rom" else 80_000_000
            return int(round(apb / (self.device_baud or self._host_baud() or 115200)))
        return self.regs.get(addr, 0)

    def _write_reg(self, op, payload, chk):
        if len(payload) % 16:
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        for i in range(0, len(payload), 16):
            addr, value, mask, _delay = struct.unpack("<IIII", payload[i:i + 16])
            old = self.regs.get(addr, 0)
            self.regs[addr] = (old & ~mask & 0xFFFFFFFF) | (value & mask)
            if addr == self.chip.spi_base and value & mask & (1 << 18):
                self._spi_command()
        self._respond(op)

    def _spi_command(self):
        """Runs the user SPI command configured in the controller registers (RDID, SFDP, status...)."""
        base = self.chip.spi_base
        command = self.regs.get(base + self.chip.spi_usr2, 0) & 0xFF
        addr = self.regs.get(base + 0x04, 0)
        if self.chip.addr_msb:
            addr >>= 8
        addr &= 0xFFFFFF
        miso_bits = self.regs.get(base + self.chip.spi_miso_dlen, 0) + 1
        result = 0
        if command == 0x9F:  # RDID: Winbond, type 0x40, capacity 2^n bytes
            result = 0xEF | (0x40 << 8) | ((self.flash.size.bit_length() - 1) << 16)
        elif command == 0x5A:  # read SFDP
            nbytes = max(1, min(4, (miso_bits + 7) // 8))
            chunk = bytes(_SFDP[(addr + i) % len(_SFDP)] for i in range(nbytes))
            result = int.from_bytes(chunk, "little")
        elif command in (0x05, 0x35, 0x15):  # status registers: not busy, no protection
            result = 0
        self.regs[base + self.chip.spi_w0] = result
        self.regs[base] = self.regs.get(base, 0) & ~(1 << 18)  # command done

    def _security_info(self, op, payload, chk):
        if self.chip.security_info is None:
            self._unsupported(op)
            return
        # flags, flash_crypt_cnt, 7 key purposes, chip_id, api/eco version
        data = struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0, self.chip.security_info, 0)
        self._respond(op, data=data)

    def _spi_attach(self, op, payload, chk):
        want = 8 if self.mode == "rom" else 4
        if len(payload) != want:
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        self._respond(op)

    def _spi_set_params(self, op, payload, chk):
        _fl_id, total, _block, sector, page, _mask = struct.unpack("<IIIIII", payload[:24])
        if sector != SECTOR or page != 256:
            raise _Reject(ROM_BAD_RESULT, STUB_BAD_BLOCKSIZE)
        self.flash_params_size = total
        self._respond(op)

    def _change_baud(self, op, payload, chk):
        new, _old = struct.unpack("<II", payload[:8])
        self._respond(op)  # the reply goes out at the old rate, then the UART switches
        self.device_baud = new

    def _mem_begin(self, op, payload, chk):
        size, blocks, blocksize, addr = struct.unpack("<IIII", payload[:16])
        self.mem = {"addr": addr, "size": size, "data": bytearray()}
        self.ram_segments.append(self.mem)
        self._respond(op)

    def _mem_data(self, op, payload, chk):
        if self.mem is None:
            raise _Reject(ROM_BAD_RESULT, STUB_NOT_IN_FLASH_MODE)
        length, _seq, _, _ = struct.unpack("<IIII", payload[:16])
        data = payload[16:]
        if length != len(data):
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        if checksum(data) != chk:
            raise _Reject(ROM_CHECKSUM, STUB_BAD_CHECKSUM)
        self.mem["data"] += data
        if len(self.mem["data"]) > self.mem["size"]:
            raise _Reject(ROM_BAD_RESULT, STUB_TOO_MUCH)
        self._respond(op)

    def _mem_end(self, op, payload, chk):
        no_entry, entry = struct.unpack("<II", payload[:8])
        self._respond(op)
        self.mem = None
        if no_entry or self.mode != "rom":
            return
        inside = any(s["addr"] <= entry < s["addr"] + len(s["data"]) for s in self.ram_segments)
        if not inside:
            # Jumping outside loaded code would crash a real chip; the emulator just stops answering.
            self.mode = "app"
            return
        self.mode = "stub"
        with self._lock:
            self.stats["stub_started"] += 1
        self._send(b"OHAI")

    def _flash_begin(self, op, payload, chk):
        compressed = op == FLASH_DEFL_BEGIN
        size, blocks, block_size, offset = struct.unpack("<IIII", payload[:16])
        extended = len(payload) >= 20
        if self.mode == "rom" and self.chip.key == "esp32" and extended:
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)  # the ESP32 ROM takes only 4 parameters
        if self.mode == "stub" and not extended:
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        if offset + size > self.flash.size:
            raise _Reject(ROM_BAD_RESULT, STUB_BAD_LEN)
        self.session = {
            "offset": offset, "size": size, "block_size": block_size, "compressed": compressed,
            "written": 0, "erased": set(),
            "inflate": zlib.decompressobj() if compressed else None,
        }
        if self.mode == "rom" and size:
            # The ROM erases the whole region up front (rounded out to sectors).
            start = offset - offset % SECTOR
            end = -(-(offset + size) // SECTOR) * SECTOR
            self.flash.erase(start, min(end, self.flash.size) - start)
            self.session["erased"] = set(range(start // SECTOR, end // SECTOR))
        self._respond(op)

    def _flash_data(self, op, payload, chk):
        s = self.session
        if s is None or s["compressed"] != (op == FLASH_DEFL_DATA):
            raise _Reject(ROM_BAD_RESULT, STUB_NOT_IN_FLASH_MODE)
        length, seq, _, _ = struct.unpack("<IIII", payload[:16])
        data = payload[16:]
        if length != len(data):
            raise _Reject(ROM_INVALID_MSG, STUB_BAD_LEN)
        if checksum(data) != chk:
            raise _Reject(ROM_CHECKSUM, STUB_BAD_CHECKSUM)
        if s["compressed"]:
            try:
                chunk = s["inflate"].decompress(data)
            except zlib.error:
                raise _Reject(ROM_DEFLATE, STUB_INFLATE) from None
            start = s["offset"] + s["written"]
        else:
            if length > s["block_size"]:
                raise _Reject(ROM_INVALID_MSG, STUB_BAD_BLOCKSIZE)
            chunk = data
            if self.mode == "stub":
                # The stub writes sequentially and drops the 0xFF padding of the last block.
                chunk = data[:max(0, s["size"] - s["written"])]
                start = s["offset"] + s["written"]
            else:
                start = s["offset"] + seq * s["block_size"]
        too_much = self.mode == "stub" and s["written"] + len(chunk) > s["size"]
        if start + len(chunk) > self.flash.size or too_much:
            raise _Reject(ROM_FLASH_WRITE, STUB_TOO_MUCH)
        if chunk:
            self._program(start, chunk)
        s["written"] += len(chunk)
        self._respond(op)

    def _program(self, start, chunk):
        s = self.session
        if self.mode == "stub":
            # The stub erases each sector just before it first writes into it.
            for sector in range(start // SECTOR, (start + len(chunk) - 1) // SECTOR + 1):
                if sector not in s["erased"]:
                    self.flash.erase(sector * SECTOR, SECTOR)
                    s["erased"].add(sector)
        self.flash.write(start, chunk)

    def _flash_end(self, op, payload, chk):
        (stay,) = struct.unpack("<I", payload[:4])
        s = self.session
        if op == FLASH_DEFL_END and s is not None and s["compressed"] and s["size"] and not s["inflate"].eof:
            raise _Reject(ROM_DEFLATE, STUB_NOT_ENOUGH)
        self.session = None
        self._respond(op)
        if not stay:
            # ROM: leave the loader and run the app; stub: reboot into the ROM loader.
            self.mode = "app" if self.mode == "rom" else "rom"

    def _md5(self, op, payload, chk):
        addr, size = struct.unpack("<II", payload[:8])
        if addr + size > self.flash.size:
            raise _Reject(ROM_BAD_RESULT, STUB_BAD_LEN)
        digest = self.flash.md5(addr, size)
        self._respond(op, data=digest.hex().encode("ascii") if self.mode == "rom" else digest)

    def _erase_flash(self, op, payload, chk):
        self.flash.erase(0, self.flash.size)
        self._respond(op)

    def _erase_region(self, op, payload, chk):
        offset, size = struct.unpack("<II", payload[:8])
        if offset % SECTOR or size % SECTOR or offset + size > self.flash.size:
            raise _Reject(ROM_BAD_RESULT, STUB_BAD_LEN)
        self.flash.erase(offset, size)
        self._respond(op)

    def _read_flash_slow(self, op, payload, chk):
        offset, length = struct.unpack("<II", payload[:8])
        if length > 64 or offset + length > self.flash.size:
            raise _Reject(ROM_READ_LEN, STUB_BAD_LEN)
        block = self.flash.read(offset, length) + b"\xff" * (64 - length)  # always a 64-byte block
        self._respond(op, data=block)

    def _read_flash(self, op, payload, chk):
        offset, length, packet, in_flight = struct.unpack("<IIII", payload[:16])
        if offset + length > self.flash.size or packet == 0 or in_flight == 0:
            raise _Reject(ROM_BAD_RESULT, STUB_BAD_LEN)
        self._respond(op)
        self.reading = {"offset": offset, "length": length, "packet": packet, "window": in_flight,
                        "sent": 0, "acked": 0}
        self._pump_read()

    def _pump_read(self):
        r = self.reading
        while r["sent"] < r["length"] and (r["sent"] - r["acked"]) < r["window"] * r["packet"]:
            n = min(r["packet"], r["length"] - r["sent"])
            self._send(self.flash.read(r["offset"] + r["sent"], n))
            r["sent"] += n

    def _read_flash_ack(self, frame):
        r = self.reading
        (acked,) = struct.unpack("<I", frame)
        if acked > r["sent"]:
            self.reading = None
            return
        r["acked"] = acked
        if acked >= r["length"]:
            self.reading = None
            self._send(self.flash.md5(r["offset"], r["length"]))
            return
        self._pump_read()

    def _run_user_code(self, op, payload, chk):
        self.mode = "app"  # no reply: the stub jumps to the app

    # ------------------------------------------------------------------------------------------- helpers

    _BAUDS = None

    def _host_baud(self):
        """The baud rate the host set on the port (termios on a pty master acts on the slave side)."""
        import termios

        if Esp32RomEmulator._BAUDS is None:
            Esp32RomEmulator._BAUDS = {
                getattr(termios, n): int(n[1:]) for n in dir(termios) if n[0] == "B" and n[1:].isdigit()
            }
        try:
            speed = termios.tcgetattr(self.master)[5]
        except termios.error:
            return None
        return Esp32RomEmulator._BAUDS.get(speed)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m host_tools.emulators.esp32_rom",
        description="Emulated ESP32 serial bootloader on a pty: prints the port path, then serves esptool "
                    "until interrupted; prints link statistics (JSON) on stderr when it stops.",
    )
    parser.add_argument("--flash", required=True, help="flash image file (created or padded with 0xFF)")
    parser.add_argument("--chip", default="esp32", choices=sorted(CHIPS))
    parser.add_argument("--flash-size", choices=list(FLASH_SIZES), help="default: 4MB (esp32), 8MB (esp32s3)")
    parser.add_argument("--mac", default="24:0a:c4:12:34:56")
    parser.add_argument("--trace", action="store_true", help="log every command on stderr")
    args = parser.parse_args(argv)
    try:
        emu = Esp32RomEmulator(args.flash, chip=args.chip, flash_size=args.flash_size, mac=args.mac,
                               trace=args.trace)
    except (ValueError, OSError) as exc:
        print("esp32_rom: error: %s" % exc, file=sys.stderr)
        return 2
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    emu.start()
    print(emu.port, flush=True)
    try:
        while not done.wait(1):
            pass
    finally:
        emu.stop()
        print(json.dumps(emu.snapshot_stats(), sort_keys=True), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
