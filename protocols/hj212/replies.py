"""Logger-side request validation and the system replies 9011/9012/9013 (the platform's 9014: host.py)."""

from .codes import (
    CN_EXE_RESULT,
    CN_NOTIFY_REPLY,
    CN_REQUEST_REPLY,
    EXERTN_OK,
    QNRTN_READY,
    ST_SYSTEM,
    Hj212Error,
)
from .packet import Packet, parse_time
from .wire import parse


def reply_flag(request):
    """Flag for a reply: the request's version bits, no ack, not split (2017: 4). None stays None."""
    if request.flag is None:
        return None
    return request.flag & 0xFC


def reply(request, cn, cp=None):
    """A system reply to `request`: same QN, PW and MN, ST=91, version-aware Flag."""
    return Packet(ST_SYSTEM, cn, request.pw, request.mn, [] if cp is None else cp, request.qn,
                  reply_flag(request))


def reply_9011(request, qn_rtn=QNRTN_READY):
    """请求应答: CP=&&QnRtn=n&&."""
    return reply(request, CN_REQUEST_REPLY, [[("QnRtn", str(qn_rtn))]])


def reply_9012(request, exe_rtn=EXERTN_OK):
    """执行结果: CP=&&ExeRtn=n&&."""
    return reply(request, CN_EXE_RESULT, [[("ExeRtn", str(exe_rtn))]])


def reply_9013(request):
    """通知应答 (to 1013, 2012, 2022): empty CP."""
    return reply(request, CN_NOTIFY_REPLY)


def check_request(packet, mn, pw, st=None, known_cns=None):
    """Validates a packet received by the logger; returns the Packet or raises Hj212Error.

    `packet` is a Packet or frame bytes (then parsed first, so a CRC error comes first). Order and
    QnRtn as in hj212.md 5.2: CRC (9), QN (7), ST (5), CN (8), PW (3), MN (4), Flag (6); a split
    (Flag D) request gives reason "split" (100). QN must be 17 digits forming a valid time; it may
    only be missing in a 2005-style packet. ST must be `st` or 91 when `st` is given; CN must be in
    `known_cns` when given. The error's `.packet` is the packet, for building the 9011 answer.
    """
    if not isinstance(packet, Packet):
        packet = parse(packet)
    qn = packet.qn
    if qn is None:
        if packet.version != 2005:
            raise Hj212Error("bad-qn", "missing QN", packet=packet)
    else:
        if len(qn) != 17 or not qn.isdigit():
            raise Hj212Error("bad-qn", repr(qn), packet=packet)
        try:
            parse_time(qn[:14])
        except Hj212Error:
            raise Hj212Error("bad-qn", "not a valid time: " + qn, packet=packet)
    if packet.st is None or len(packet.st) != 2:
        raise Hj212Error("bad-st", repr(packet.st), packet=packet)
    if st is not None and packet.st != st and packet.st != ST_SYSTEM:
        raise Hj212Error("wrong-st", "ST=%s, expected %s" % (packet.st, st), packet=packet)
    cn = packet.cn
    if cn is None or len(cn) != 4 or not cn.isdigit():
        raise Hj212Error("bad-cn", repr(cn), packet=packet)
    if known_cns is not None and cn not in known_cns:
        raise Hj212Error("unknown-cn", cn, packet=packet)
    if packet.pw is None:
        raise Hj212Error("bad-pw", "missing PW", packet=packet)
    if packet.pw != pw:
        raise Hj212Error("wrong-pw", packet=packet)
    if packet.mn != mn:
        raise Hj212Error("wrong-mn", "MN=%s" % (packet.mn,), packet=packet)
    if packet.flag is not None:
        if packet.version is None:
            raise Hj212Error("bad-flag", "unknown version bits in Flag=%d" % packet.flag, packet=packet)
        if packet.is_split:
            raise Hj212Error("split", "split requests are not supported", packet=packet)
    return packet
