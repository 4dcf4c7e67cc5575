"""Property tests of the HJ 212 core (CPython, hypothesis).

References are independent of protocols.hj212: a bitwise transcription of the standard's Appendix A
CRC, hand-built segment strings, and Python's datetime for QN arithmetic.
"""

import datetime

from hj212_reference import crc_appendix_a
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocols import hj212
from protocols.hj212 import Hj212Error

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])




def framed(segment_bytes, length=None, crc=None):
    """A frame built by hand (independent of hj212.frame)."""
    n = len(segment_bytes) if length is None else length
    c = "%04X" % crc_appendix_a(segment_bytes) if crc is None else crc
    return b"##" + b"%04d" % n + segment_bytes + c.encode() + b"\r\n"


def expect(reason, raw):
    try:
        hj212.parse(raw)
    except Hj212Error as e:
        assert e.reason == reason, (e.reason, reason, raw)
        return e
    raise AssertionError("no error for %r" % raw)


# ---- strategies ----------------------------------------------------------------------------------

ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
digits = st.text("0123456789", min_size=1, max_size=4)
key_chars = st.characters(blacklist_characters="=;,", blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
keys = st.text(key_chars, min_size=1, max_size=12)
plain_values = st.text(st.characters(blacklist_characters=";,\r\n \t", blacklist_categories=("Cs",)),
                       max_size=12).filter(lambda v: not v.startswith("//"))
text_values = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20) \
    .filter(lambda t: "//" not in t and not t.endswith("/") and not t.startswith("/")) \
    .map(lambda t: "//" + t + "//")
values = st.one_of(plain_values, text_values)
groups = st.lists(st.tuples(keys, values), min_size=1, max_size=5)
cps = st.lists(groups, max_size=6)


@st.composite
def packets(draw, cp=cps):
    split = draw(st.booleans())
    flag = draw(st.one_of(st.none(), st.integers(0, 255)))
    return hj212.Packet(
        st=draw(st.text(ALNUM, min_size=2, max_size=2)),
        cn=draw(st.text("0123456789", min_size=4, max_size=4)),
        pw=draw(st.text(ALNUM, min_size=0, max_size=8)),
        mn=draw(st.text(ALNUM, min_size=1, max_size=24)),
        cp=[[tuple(p) for p in g] for g in draw(cp)],
        qn=draw(st.one_of(st.none(), st.text("0123456789", min_size=17, max_size=17))),
        flag=flag,
        pnum=draw(digits) if split else None,
        pno=draw(digits) if split else None,
    )


def hand_segment(p):
    """The segment text written from the standard's layout, independently of Packet.segment()."""
    head = []
    for name, v in (("QN", p.qn), ("ST", p.st), ("CN", p.cn), ("PW", p.pw), ("MN", p.mn),
                    ("Flag", None if p.flag is None else str(p.flag)), ("PNUM", p.pnum), ("PNO", p.pno)):
        if v is not None:
            head.append("%s=%s;" % (name, v))
    data = ";".join(",".join(k + "=" + v for k, v in g) for g in p.cp)
    return "".join(head) + "CP=&&" + data + "&&"


# ---- CRC -----------------------------------------------------------------------------------------

@SETTINGS
@given(st.binary(max_size=400))
def test_crc_equals_bitwise_appendix_a(data):
    assert hj212.crc16(data) == crc_appendix_a(data)


@SETTINGS
@given(st.binary(min_size=1, max_size=200), st.binary(max_size=200))
def test_crc_low_byte_and_continuation(a, b):
    assert crc_appendix_a(a) & 0xFF in (0x00, 0x01, 0x40, 0x41, 0x80, 0x81, 0xC0, 0xC1)
    assert hj212.crc16(b, hj212.crc16(a)) == crc_appendix_a(a + b)


# ---- codec round trips ---------------------------------------------------------------------------

@SETTINGS
@given(packets())
def test_segment_encode_decode_identity(p):
    text = hand_segment(p)
    assert p.segment() == text
    q = hj212.parse_segment(text)
    assert (q.qn, q.st, q.cn, q.pw, q.mn, q.flag, q.pnum, q.pno) == (p.qn, p.st, p.cn, p.pw, p.mn, p.flag,
                                                                       p.pnum, p.pno)
    assert q.cp == [list(g) for g in p.cp]
    assert q.segment() == text
    for g in p.cp:
        for k, _ in g:
            assert k in q.fields()
    first = {}
    for g in p.cp:
        for k, v in g:
            first.setdefault(k, v)
    assert q.fields() == first
    for k in first:
        assert q.get(k) == first[k]


@SETTINGS
@given(packets())
def test_frame_parse_identity(p):
    seg = hand_segment(p).encode("utf-8")
    assume(len(seg) <= 1024)
    raw = framed(seg)
    assert p.encode() == raw
    q = hj212.parse(raw)
    assert q.encode() == raw and q.raw == raw
    lower = raw[:-6] + raw[-6:-2].lower() + b"\r\n"
    assert hj212.parse(lower).segment() == q.segment()


@SETTINGS
@given(st.lists(st.sampled_from(["QN=20160801085857223", "ST=32", "CN=2011", "PW=123456", "MN=AB",
                                 "Flag=5", "PNUM=2", "PNO=1"]), unique=True), cps)
def test_any_header_order_reencodes_identically(items, cp):
    data = ";".join(",".join(k + "=" + v for k, v in g) for g in cp)
    seg = "".join(i + ";" for i in items) + "CP=&&" + data + "&&"
    assert hj212.parse_segment(seg).segment() == seg


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_any_cp_data_area_reencodes_identically(data):
    # lossless even for junk: items without '=', empty items, stray '//', whitespace
    seg = "ST=32;CN=2011;PW=1;MN=1;CP=&&" + data + "&&"
    p = hj212.parse_segment(seg)
    assert p.segment() == seg and p.cp_text() == data


# ---- streams -------------------------------------------------------------------------------------

@SETTINGS
@given(st.lists(packets(cp=st.lists(groups, max_size=3)), min_size=1, max_size=6), st.data())
def test_random_chunking_of_a_frame_stream(pkts, data):
    frames = []
    for p in pkts:
        seg = hand_segment(p).encode("utf-8")
        if len(seg) <= 1024 and b"\r\n" not in seg:
            frames.append(framed(seg))
    assume(frames)
    blob = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(blob)), max_size=20)))
    dec = hj212.StreamDecoder()
    out = []
    last = 0
    for c in cuts + [len(blob)]:
        out.extend(dec.feed(blob[last:c]))
        last = c
    assert [item.ok for item in out] == [True] * len(frames)
    assert [item.raw for item in out] == frames
    assert dec.buffered == 0


@SETTINGS
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_stream_never_raises_and_stays_bounded(chunks):
    dec = hj212.StreamDecoder(max_buffer=1536)
    for c in chunks:
        for item in dec.feed(c):
            assert item.ok or isinstance(item, Hj212Error)
        assert dec.buffered <= 1536 + 300
    dec.flush()
    assert dec.buffered == 0


@SETTINGS
@given(st.lists(st.sampled_from([b"##", b"#", b"\r\n", b"0101", b"QN=1;", b"CP=&&", b"&&", b"1C80", b"x"]),
                max_size=60))
def test_stream_never_raises_on_frame_like_noise(parts):
    dec = hj212.StreamDecoder()
    for p in parts:
        dec.feed(p)
    dec.flush()


# ---- corruption is always detected, with the right reason ----------------------------------------

good_frames = packets(cp=st.lists(groups, max_size=4)).map(lambda p: hand_segment(p).encode("utf-8")) \
    .filter(lambda s: len(s) <= 1024).map(framed)


@SETTINGS
@given(good_frames, st.text("0123456789ABCDEFabcdef", min_size=4, max_size=4))
def test_wrong_crc(raw, crc):
    assume(int(crc, 16) != int(raw[-6:-2], 16))
    e = expect("crc", raw[:-6] + crc.encode() + b"\r\n")
    assert e.qn_rtn == 9


@SETTINGS
@given(good_frames, st.data())
def test_any_single_byte_change_in_the_segment_is_a_crc_error(raw, data):
    # the CRC register's high byte goes through a permutation each byte, so one changed byte always shows
    i = data.draw(st.integers(6, len(raw) - 7))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    expect("crc", raw[:i] + bytes([b]) + raw[i + 1:])


@SETTINGS
@given(good_frames, st.integers(0, 9999))
def test_wrong_length(raw, n):
    assume(n != len(raw) - 12)
    expect("too-long" if n > 1024 else "length", b"##%04d" % n + raw[6:])


@SETTINGS
@given(good_frames, st.data())
def test_truncated(raw, data):
    k = data.draw(st.integers(0, len(raw) - 1))
    expect("no-crlf" if k == len(raw) - 2 else "truncated", raw[:k])


@SETTINGS
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1025, max_size=1400))
def test_over_long(filler):
    seg = ("ST=32;CN=2011;PW=1;MN=1;CP=&&i11001-Info=//" + filler.replace("/", "") + "//&&").encode("utf-8")
    assume(len(seg) <= 9999)
    expect("too-long", framed(seg))
    try:
        hj212.frame(seg)
    except Hj212Error as e:
        assert e.reason == "too-long"
    else:
        raise AssertionError("frame() accepted %d bytes" % len(seg))


@SETTINGS
@given(good_frames, st.binary(min_size=2, max_size=2))
def test_missing_or_wrong_crlf(raw, tail):
    expect("no-crlf", raw[:-2])
    assume(tail != b"\r\n")
    expect("no-crlf", raw[:-2] + tail)


@SETTINGS
@given(packets(cp=st.lists(groups, max_size=3)), st.sampled_from(["qn", "st", "cn", "pw", "mn"]),
       st.characters(min_codepoint=0x80, blacklist_categories=("Cs",)))
def test_non_ascii_header(p, field, char):
    value = getattr(p, field) or "x"
    setattr(p, field, value[:1] + char + value[1:])
    seg = hand_segment(p).encode("utf-8")
    assume(len(seg) <= 1024)
    expect("non-ascii-header", framed(seg))


# ---- split and QN arithmetic ---------------------------------------------------------------------

@SETTINGS
@given(st.lists(st.lists(st.tuples(st.text("abcdefw0123456789-", min_size=1, max_size=10),
                                   st.text("0123456789.N", min_size=1, max_size=8)), min_size=1, max_size=6),
                min_size=1, max_size=80),
       st.integers(300, 1024), st.booleans(), st.randoms(use_true_random=False))
def test_split_then_reassemble(body, limit, with_time, rnd):
    cp = ([[("DataTime", "20240315102000")]] if with_time else []) + [[tuple(x) for x in g] for g in body]
    p = hj212.build("31", "2051", "123456", "31000000123456789ABCDEF0", cp, qn="20241231235959990", ack=True)
    try:
        parts = hj212.split(p, max_segment=limit)
    except Hj212Error as e:
        assert e.reason == "too-long"
        return
    if len(parts) == 1:
        assert parts[0] is p and len(p.segment().encode()) <= limit
        return
    assert all(len(q.segment().encode()) <= limit for q in parts)
    assert [q.pno for q in parts] == [str(i + 1) for i in range(len(parts))]
    assert all(q.is_split and q.pnum == str(len(parts)) for q in parts)
    frames = [q.encode() if len(q.segment().encode()) <= 1024 else None for q in parts]
    order = list(range(len(parts)))
    rnd.shuffle(order)
    r = hj212.Reassembler()
    results = [r.add(hj212.parse(frames[i]) if frames[i] else parts[i]) for i in order]
    assert all(x is None for x in results[:-1])
    assert results[-1].segment() == p.segment()


@SETTINGS
@given(st.datetimes(min_value=datetime.datetime(1990, 1, 1), max_value=datetime.datetime(2200, 12, 31)),
       st.integers(0, 10 ** 11))
def test_qn_add_ms_matches_datetime(t, ms):
    t = t.replace(microsecond=t.microsecond // 1000 * 1000)
    later = t + datetime.timedelta(milliseconds=ms)
    assume(later.year <= 9999)
    fmt = "%Y%m%d%H%M%S"
    qn = t.strftime(fmt) + "%03d" % (t.microsecond // 1000)
    assert hj212.qn_add_ms(qn, ms) == later.strftime(fmt) + "%03d" % (later.microsecond // 1000)
    assert hj212.parse_time(t.strftime(fmt)) == (t.year, t.month, t.day, t.hour, t.minute, t.second)
