"""The parts of HJ 212 only the host uses (mostly the platform's side): kept out of the modules the
logger loads, where each function costs heap at import. All of it is reachable as hj212.<name>.
"""

from .codes import CN_DATA_ACK, Hj212Error
from .crc import crc16
from .packet import Packet, qn_from_time
from .parts import _head
from .replies import reply
from .versions import FLAG_D, make_flag

qn_now = qn_from_time  # same helper; the firmware passes its clock module's current time tuple


def crc_hex(data):
    """The 4 upper-case hex digits that go on the wire (high byte first)."""
    return "%04X" % crc16(data)


def build(st, cn, pw, mn, cp=None, qn=None, ack=False, version=2017, flag=None):
    """A packet for sending. `flag` defaults to make_flag(version, ack) (2017: 4, or 5 with ack)."""
    if flag is None:
        flag = make_flag(version, ack)
    return Packet(st, cn, pw, mn, [] if cp is None else cp, qn, flag)


def reply_9014(request):
    """数据应答 (to an upload whose Flag has A=1): empty CP, the upload's QN."""
    return reply(request, CN_DATA_ACK)


class Reassembler:
    """Collects split parts (any order; a repeated PNO replaces the earlier one).

    `add(packet)` returns the merged packet when its last part arrives (QN and header of part 1, Flag D
    cleared, no PNUM/PNO), the packet itself when it is not split, else None. Parts belong together
    when MN, ST, CN, PNUM and the leading DataTime agree. At most `max_pending` records are held; the
    oldest is dropped beyond that (the caller owns time: call `clear()` on its own timeout).
    """

    def __init__(self, max_pending=8):
        self.max_pending = max_pending
        self._keys = []
        self._parts = {}

    @property
    def pending(self):
        return len(self._keys)

    def clear(self):
        self._keys = []
        self._parts = {}

    def add(self, packet):
        if not packet.is_split:
            return packet
        pnum = packet.pnum
        pno = packet.pno
        if not pnum or not pno or not pnum.isdigit() or not pno.isdigit() or len(pnum) > 4 or len(pno) > 4:
            raise Hj212Error("bad-split", "PNUM=%s PNO=%s" % (pnum, pno), packet=packet)
        pnum = int(pnum)
        pno = int(pno)
        if not 1 <= pno <= pnum:
            raise Hj212Error("bad-split", "PNO %d outside 1..%d" % (pno, pnum), packet=packet)
        head = _head(packet.cp)
        key = (packet.mn, packet.st, packet.cn, pnum, head[0][1] if head else None)
        parts = self._parts.get(key)
        if parts is None:
            if len(self._keys) >= self.max_pending:
                del self._parts[self._keys.pop(0)]
            parts = {}
            self._parts[key] = parts
            self._keys.append(key)
        parts[pno] = packet
        if len(parts) < pnum:
            return None
        del self._parts[key]
        self._keys.remove(key)
        first = parts[1]
        cp = list(first.cp)
        for i in range(2, pnum + 1):
            more = parts[i].cp
            cp.extend(more[1:] if head else more)
        return first.copy(cp=cp, flag=first.flag & ~FLAG_D, pnum=None, pno=None)
