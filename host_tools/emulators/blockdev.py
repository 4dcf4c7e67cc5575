"""File-backed flash block device for MicroPython's `vfs.VfsLfs2`, with byte counting and torn writes.

Runs under MicroPython (the unix port; tests and the power-cut worker) and CPython (plain file I/O only).
It implements the extended block protocol LittleFS uses:

    readblocks(block, buf, offset)    read len(buf) bytes at block*size+offset
    writeblocks(block, buf, offset)   program len(buf) bytes (LittleFS only programs erased bytes)
    ioctl(op, arg)                    4 = block count, 5 = block size, 6 = erase block `arg`, others 0

The image file is the flash: a later `FileBlockDev(path)` on the same file is the same flash after a
reboot. Counters: `bytes_written` (programmed), `erases`, `bytes_read`, `progs`.

Torn writes: `budget` is how many flash bytes may still be touched (a program of n bytes costs n, an erase
costs one block). The operation that crosses the budget is done only partly (the first `budget` bytes of
a program land; an erase sets only the first `budget` bytes to 0xFF, leaving old data behind) and from
then on the device is dead: every program/erase returns -EIO without touching the image, like a chip
whose supply has gone. `cut` says it happened. The caller abandons that mount and remounts the image with
a fresh device (the "reboot").
"""

EIO = 5


class FileBlockDev:
    def __init__(self, path, block_size=4096, block_count=None, budget=None):
        """Opens the image at `path`; with `block_count` a new erased image (0xFF) of that size is made."""
        self.path = path
        self.block_size = block_size
        if block_count is not None:
            blank = b"\xff" * block_size
            with open(path, "wb") as f:
                for _ in range(block_count):
                    f.write(blank)
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.block_count = self.f.tell() // block_size
        self._blank = b"\xff" * block_size  # allocated once: erases must not fragment a small heap
        self.budget = budget
        self.cut = False
        self.bytes_written = 0
        self.bytes_read = 0
        self.progs = 0
        self.erases = 0

    def close(self):
        self.f.close()

    def _spend(self, n):
        """How many of n bytes may land (n when no budget); arms the cut when the budget runs out."""
        if self.budget is None:
            return n
        if n < self.budget:
            self.budget -= n
            return n
        part = self.budget
        self.budget = 0
        self.cut = True
        return part

    def readblocks(self, block, buf, offset=0):
        self.f.seek(block * self.block_size + offset)
        self.f.readinto(buf)
        self.bytes_read += len(buf)
        return 0

    def writeblocks(self, block, buf, offset=0):
        if self.cut:
            return -EIO
        n = self._spend(len(buf))
        self.f.seek(block * self.block_size + offset)
        if n == len(buf):
            self.f.write(buf)
        elif n:
            self.f.write(memoryview(buf)[:n])
        self.bytes_written += n
        self.progs += 1
        return -EIO if self.cut else 0

    def ioctl(self, op, arg):
        if op == 4:
            return self.block_count
        if op == 5:
            return self.block_size
        if op == 6:
            if self.cut:
                return -EIO
            n = self._spend(self.block_size)
            self.f.seek(arg * self.block_size)
            if n == self.block_size:
                self.f.write(self._blank)
            elif n:
                self.f.write(memoryview(self._blank)[:n])
            self.erases += 1
            return -EIO if self.cut else 0
        return 0


def mount(bdev, point, mkfs=False):
    """Mounts a LittleFS v2 filesystem on `bdev` at `point` (MicroPython only); `mkfs` formats first."""
    import vfs

    if mkfs:
        vfs.VfsLfs2.mkfs(bdev)
    fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, point)
    return fs


def umount(point):
    import vfs

    try:
        vfs.umount(point)
    except OSError:
        pass
