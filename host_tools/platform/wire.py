"""The platform's thin layer over protocols.hj212 (which does all parsing, framing and CRC)."""

from protocols.hj212 import replies
from protocols.hj212.host import build, reply_9014
from protocols.hj212.wire import StreamDecoder


def decoder(max_buffer):
    return StreamDecoder(max_buffer=max_buffer)


def flush(dec):
    """Items left in the decoder when the connection closed (e.g. a truncated frame)."""
    return _convert(dec.flush())


def feed(dec, data):
    """Decoded items of one TCP chunk: (kind, raw, packet, reason, qn_rtn, header) with kind "packet" or
    "error"; `header` is the best-effort packet of a bad frame (CRC error...) that a reply can address."""
    return _convert(dec.feed(data))


def _convert(results):
    out = []
    for item in results:
        if item.ok:
            out.append(("packet", item.raw, item, None, None, None))
        else:
            header = item.packet
            if header is not None and (header.qn is None or header.mn is None):
                header = None
            out.append(("error", item.raw or b"", None, item.reason, item.qn_rtn, header))
    return out


def reply(packet, cn, qn_rtn=None):
    """System reply (ST=91, the request's version bits, QN/PW/MN echoed) as frame bytes."""
    if cn == "9011":
        return replies.reply_9011(packet, qn_rtn).encode()
    if cn == "9013":
        return replies.reply_9013(packet).encode()
    return reply_9014(packet).encode()


def request(st, cn, pw, mn, cp_pairs, qn, flag):
    """A platform request frame; CP items go in one `;`-separated list (as in Appendix C)."""
    return build(st, cn, pw, mn, [[(k, v)] for k, v in cp_pairs], qn=qn, flag=flag).encode()


def items(packet):
    """CP items as (key, value) pairs in wire order, first occurrence of a key only."""
    return list(packet.fields().items())


def text(packet):
    return (packet.raw or packet.encode()).decode("utf-8", "replace").rstrip("\r\n")
