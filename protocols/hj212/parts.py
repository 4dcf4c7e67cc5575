"""Splitting a packet whose CP does not fit 1024 bytes into PNUM/PNO parts (host.Reassembler joins them).

As in the standard's C.49/C.50 each part is a full packet with its own QN, Flag D set, `PNUM`/`PNO`,
and the record's `DataTime=...;` repeated at the start of its CP. Parts break only between `;` groups.
Not named split.py: importing a submodule sets the package attribute of its name, which would hide
the function hj212.split behind the module.
"""

from .codes import Hj212Error
from .packet import MAX_SEGMENT, qn_add_ms
from .versions import FLAG_D


def _head(cp):
    if cp and len(cp[0]) == 1 and cp[0][0][0] == "DataTime":
        return cp[0]
    return None


def _group_len(group):
    n = len(group) - 1
    for k, v in group:
        n += len(k.encode())
        if v is not None:
            n += 1 + len(v.encode())
    return n


def split(packet, max_segment=MAX_SEGMENT, qns=None):
    """[packet] when it fits, else its parts. QNs: `qns` if given, else the packet's QN for part 1 and
    +1 ms per following part (as in C.49). Raises Hj212Error("too-long") if one group cannot fit."""
    if len(packet.segment().encode()) <= max_segment:
        return [packet]
    head = _head(packet.cp)
    body = packet.cp[1:] if head else packet.cp
    flag = (packet.flag or 0) | FLAG_D
    sizes = [_group_len(g) for g in body]
    digits = 1
    while True:
        template = packet.copy(cp=[head] if head else [], flag=flag, pnum="9" * digits, pno="9" * digits)
        overhead = len(template.segment().encode())
        parts = []
        cur = []
        used = overhead
        for i in range(len(body)):
            add = sizes[i] + (1 if (cur or head) else 0)
            if cur and used + add > max_segment:
                parts.append(cur)
                cur = []
                used = overhead
                add = sizes[i] + (1 if head else 0)
            if used + add > max_segment:
                raise Hj212Error("too-long", "one CP group is %d bytes" % sizes[i])
            cur.append(body[i])
            used += add
        if cur:
            parts.append(cur)
        if len(str(len(parts))) <= digits:
            break
        digits += 1
    n = len(parts)
    if qns is not None and len(qns) < n:
        raise ValueError("need %d QNs, got %d" % (n, len(qns)))
    out = []
    for i in range(n):
        if qns is not None:
            qn = qns[i]
        elif packet.qn is None or i == 0:
            qn = packet.qn
        else:
            qn = qn_add_ms(packet.qn, i)
        out.append(packet.copy(cp=([head] if head else []) + parts[i], flag=flag, pnum=str(n),
                               pno=str(i + 1), qn=qn))
    return out
