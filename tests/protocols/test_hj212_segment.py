"""protocols/hj212/segment.py: frames written into one reusable buffer, byte-identical to the Packet builder
(`hj212.frame` of the segment; `hj212.split` of the CP taken as whole `;` groups for a CP over 1024 bytes)."""

from portable import raises

from protocols import hj212
from protocols.hj212 import Hj212Error
from protocols.hj212.segment import Frames

INTERPRETERS = ("cpython", "micropython")
MN = "31000000123456789ABCDEF0"
QN = "20240315103000456"


class Rng:
    """xorshift32: the same records on both interpreters."""

    def __init__(self, seed):
        self.s = seed

    def next(self, n):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x % n


def _whole_groups(cp):
    # The reference split's input: each `;` group one opaque item, a leading DataTime group a real item.
    out = []
    for g in cp.split(";"):
        if not out and g.startswith("DataTime="):
            out.append([("DataTime", g[9:])])
        else:
            out.append([(g, None)])
    return out


def _qns(n):
    return [hj212.qn_add_ms(QN, 7 * i) for i in range(n)]


def reference(st, cn, pw, mn, flag, cp, max_segment=1024):
    """[frame bytes] as the Packet builder makes them (what app/sender.py sent before the segment writer)."""
    seg = "QN=%s;ST=%s;CN=%s;PW=%s;MN=%s;Flag=%d;CP=&&%s&&" % (QN, st, cn, pw, mn, flag, cp)
    if len(seg.encode()) <= max_segment:
        return [hj212.frame(seg)]
    pkt = hj212.Packet(st, cn, pw, mn, _whole_groups(cp), QN, flag)
    parts = hj212.split(pkt, max_segment, qns=_qns(64))
    return [p.encode() for p in parts]


def written(st, cn, pw, mn, flag, cp, max_segment=1024, cp_bytes=False):
    f = Frames(st, cn, pw, mn, flag, cp.encode() if cp_bytes else cp, max_segment)
    qns = _qns(f.n) if f.n > 1 else [QN]
    return [bytes(f.frame(i, qns[i])) for i in range(f.n)]


def _value(rng):
    w = rng.next(4)
    if w == 0:
        return str(rng.next(100000))
    if w == 1:
        return "%d.%d" % (rng.next(1000), rng.next(1000))
    if w == 2:
        return "N"
    return "//" + "x" * rng.next(40) + " \u6c14\u4f53 //"  # UTF-8: lengths are bytes


def random_cp(rng, groups, datatime=True, width=9):
    out = ["DataTime=20240315103000"] if datatime else []
    for g in range(groups):
        items = []
        for k in range(1 + rng.next(width)):
            items.append("a%05d-%s=%s" % (21000 + g, ("Cou", "Min", "Avg", "Max", "ZsAvg", "Flag")[k % 6],
                                          _value(rng)))
        out.append(",".join(items))
    return ";".join(out)


def test_one_packet_is_the_frame_of_its_segment():
    cp = "DataTime=20240315103000;a21002-Avg=45.6,a21002-Flag=N;a19001-Avg=9,a19001-Flag=M"
    got = written("31", "2051", "123456", MN, 5, cp)
    assert got == reference("31", "2051", "123456", MN, 5, cp)
    assert got[0].startswith(b"##0") and got[0].endswith(b"\r\n")
    assert hj212.parse(got[0]).cp_text() == cp
    assert written("31", "2051", "123456", MN, 5, cp, cp_bytes=True) == got
    assert written("91", "1013", "123456", MN, 4, "") == reference("91", "1013", "123456", MN, 4, "")


def test_many_records_split_or_not_match_the_packet_builder():
    rng = Rng(0x2051)
    split = 0
    for case in range(120):
        cp = random_cp(rng, 1 + rng.next(40), datatime=case % 5 != 0)
        flag = (4, 5, 1, 0)[case % 4]
        st, pw = ("31", "123456") if case % 2 else ("27", "pw-" + "q" * rng.next(20))
        got = written(st, "2051", pw, MN, flag, cp)
        want = reference(st, "2051", pw, MN, flag, cp)
        assert got == want, (case, cp)
        split += len(got) > 1
    assert split > 30  # most of them split, some into many parts


def test_small_max_segment_needs_two_digit_part_numbers_and_stays_identical():
    rng = Rng(7)
    for _ in range(20):
        cp = random_cp(rng, 30 + rng.next(30), width=2)
        got = written("31", "2061", "123456", MN, 5, cp, max_segment=300)
        assert got == reference("31", "2061", "123456", MN, 5, cp, max_segment=300)
    assert len(got) >= 10
    p = hj212.parse(got[-1])
    assert p.flag == 7 and p.pnum == str(len(got)) and p.pno == p.pnum and p.qn == _qns(len(got))[-1]


def test_parts_reassemble_to_the_record_and_each_part_rewrites_identically():
    cp = random_cp(Rng(99), 60)
    f = Frames("31", "2051", "123456", MN, 5, cp)
    qns = _qns(f.n)
    frames = [bytes(f.frame(i, qns[i])) for i in range(f.n)]
    assert f.n >= 3
    assert [bytes(f.frame(i, qns[i])) for i in range(f.n)] == frames  # a re-send is the same packet
    r = hj212.Reassembler()
    merged = None
    for raw in frames:
        p = hj212.parse(raw)
        assert len(raw) - 12 <= 1024 and p.get("DataTime") == "20240315103000"
        merged = r.add(p) or merged
    assert merged.cp_text() == cp


def test_own_buffer_and_errors():
    buf = bytearray(1100)
    cp = "DataTime=20240315103000;a21002-Rtd=1.5,a21002-Flag=N"
    mv = Frames("31", "2011", "123456", MN, 5, cp).frame(0, QN, buf)
    assert bytes(mv) == reference("31", "2011", "123456", MN, 5, cp)[0] and bytes(buf[:len(mv)]) == bytes(mv)
    with raises(Hj212Error) as e:
        Frames("31", "2051", "123456", MN, 5, "DataTime=20240315103000;" + "x" * 1100)
    assert e.value.reason == "too-long"
    with raises(Hj212Error) as e:
        Frames("31", "2051", "123456", MN, 5, "DataTime=" + "1" * 1100)
    assert e.value.reason == "too-long"
    with raises(Hj212Error) as e:
        Frames("31", "2051", "12\u00e9", MN, 5, "a=1").frame(0, QN)
    assert e.value.reason == "non-ascii-header"
