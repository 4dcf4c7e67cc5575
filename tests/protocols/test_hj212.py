"""HJ 212 protocol core on both interpreters: CRC, framing, segment/CP codec, corpus, stream, split.

Expected values come from the standard (HJ 212-2017 Appendix A vector, the Appendix C segments in
tests/data/hj212/appendix-c-segments.txt, Table 3 flag rules, Tables 6/7 codes), from the frames
printed in docs/hj212.md section 8, from a bitwise transcription of Appendix A written below, or
were worked out by hand. None was produced by protocols.hj212.
"""

import sys

from hj212_reference import crc_appendix_a
from portable import raises

from protocols import hj212
from protocols.hj212 import Hj212Error

INTERPRETERS = ("cpython", "micropython")

if sys.implementation.name == "micropython":
    DATA = "tests/data/hj212/"  # the harness runs with the repo root as cwd
    EXAMPLES = "examples/hj212/standard-examples.txt"
else:
    import os

    _ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    DATA = os.path.join(_ROOT, "tests", "data", "hj212") + os.sep
    EXAMPLES = os.path.join(_ROOT, "examples", "hj212", "standard-examples.txt")

A_SEGMENT = ("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
             "CP=&&RtdInterval=30&&")
A_FRAME = b"##0101" + A_SEGMENT.encode() + b"1C80\r\n"  # HJ 212-2017 Appendix A, as printed




def read_lines(path):
    with open(path, "rb") as f:
        text = f.read()
    out = []
    for line in text.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line and not (line.startswith(b"#") and not line.startswith(b"##")):
            out.append(line)
    return out


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != 0x5C:
            out.append(c)
            i += 1
            continue
        n = text[i + 1]
        if n == 0x72:
            out.append(13)
        elif n == 0x6E:
            out.append(10)
        elif n == 0x5C:
            out.append(0x5C)
        elif n == 0x78:
            out.append(int(text[i + 2:i + 4], 16))
            i += 2
        else:
            raise ValueError("bad escape in corpus")
        i += 2
    return bytes(out)


def good_frames():
    return [line + b"\r\n" for line in read_lines(DATA + "good.txt")]


def bad_frames():
    out = []
    for line in read_lines(DATA + "bad.txt"):
        reason, stream, raw, note = line.split(b"\t")
        out.append((reason.decode(), stream.decode().split(","), unescape(raw), note.decode()))
    return out


def appendix_c():
    out = []
    for line in read_lines(DATA + "appendix-c-segments.txt"):
        table, kind, seg = line.split(b"\t")
        out.append((table.decode(), kind == b"complete", seg.decode()))
    return out


class Lcg:
    """Deterministic pseudo-random numbers (same sequence on both interpreters)."""

    def __init__(self, seed):
        self.state = seed

    def next(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state % n


# QnRtn per reason, from the brief's table (CRC 9, PW 3, MN 4, ST 5, Flag 6, QN 7, CN 8, else 100).
QNRTN = {"crc": 9, "bad-flag": 6, "bad-qn": 7, "bad-st": 5, "wrong-st": 5, "bad-cn": 8, "unknown-cn": 8,
         "bad-pw": 3, "wrong-pw": 3, "wrong-mn": 4}


# ---- CRC -----------------------------------------------------------------------------------------

def test_crc_appendix_a_vector():
    seg = A_SEGMENT.encode()
    assert len(seg) == 101
    assert hj212.crc16(seg) == 0x1C80
    assert hj212.crc_hex(seg) == "1C80"
    assert hj212.frame(A_SEGMENT) == A_FRAME
    assert hj212.frame(seg) == A_FRAME


def test_crc_is_not_modbus():
    # CRC-16/MODBUS of the same bytes is 0x0759 (hj212.md 1.2); the standard's loop differs.
    assert hj212.crc16(A_SEGMENT.encode()) != 0x0759


def test_crc_matches_bitwise_transcription():
    rnd = Lcg(7)
    cases = [b"\x00", b"\xff", b"##", A_SEGMENT.encode(), "清洗管路".encode()]
    for n in (1, 2, 3, 17, 255, 256, 1024):
        cases.append(bytes([rnd.next(256) for _ in range(n)]))
    for data in cases:
        expected = crc_appendix_a(data)
        assert hj212.crc16(data) == expected, data
        assert hj212.crc16(bytearray(data)) == expected
        assert hj212.crc16(memoryview(data)) == expected
        # proved from the loop: after `(reg >> 8) ^ byte` the high byte is 0, so only 8 low bytes remain
        assert expected & 0xFF in (0x00, 0x01, 0x40, 0x41, 0x80, 0x81, 0xC0, 0xC1)
        half = len(data) // 2
        assert hj212.crc16(data[half:], hj212.crc16(data[:half])) == expected


def test_crc_empty_is_initial_register():
    assert hj212.crc16(b"") == 0xFFFF


# ---- frames: corpus ------------------------------------------------------------------------------

def test_good_corpus_parses_and_reencodes_byte_identical():
    frames = good_frames()
    assert len(frames) >= 20
    for raw in frames:
        p = hj212.parse(raw)
        assert p.raw == raw
        expected = raw[:-6] + raw[-6:].upper()  # lower-case CRC is accepted, re-emitted upper case
        assert p.encode() == expected, raw
        assert hj212.frame(p.segment()) == expected
        assert hj212.unframe(raw) == raw[6:-6]
        assert int(raw[2:6]) == len(raw) - 12


def test_bad_corpus_gives_expected_reason_and_qnrtn():
    cases = bad_frames()
    assert len(cases) >= 25
    for reason, _, raw, note in cases:
        with raises(Hj212Error) as e:
            hj212.parse(raw)
        assert e.value.reason == reason, (note, e.value.reason, reason)
        assert e.value.qn_rtn == QNRTN.get(reason, 100), note
        assert not e.value.ok


def test_crc_error_still_exposes_header_for_the_9011_answer():
    raw = A_FRAME[:-6] + b"1C81\r\n"
    with raises(Hj212Error) as e:
        hj212.parse(raw)
    assert e.value.reason == "crc" and e.value.qn_rtn == 9
    req = e.value.packet
    assert req.qn == "20160801085857223" and req.cn == "1062"
    assert hj212.reply_9011(req, e.value.qn_rtn).segment() == (
        "QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=9&&")


def test_frame_counts_utf8_bytes_and_refuses_over_1024():
    # hj212.md 8.5: C.40 content, 152 UTF-8 bytes (144 characters), CRC 9481 over the UTF-8 bytes
    seg = ("QN=20160801085857223;ST=32;CN=3020;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
           "CP=&&DataTime=20160801085857;PolId=w01018;i11001-Info=//清洗管路//&&")
    f = hj212.frame(seg)
    assert f[:6] == b"##0152" and f[-6:] == b"9481\r\n"
    assert len(hj212.frame("x" * 1024)) == 1036
    with raises(Hj212Error) as e:
        hj212.frame("x" * 1025)
    assert e.value.reason == "too-long"
    with raises(Hj212Error) as e:
        hj212.frame("清" * 342)  # 342 characters, 1026 bytes
    assert e.value.reason == "too-long"


# ---- the standard's Appendix C -------------------------------------------------------------------

def test_appendix_c_segments_reencode_byte_identical():
    rows = appendix_c()
    complete = [seg for _, ok, seg in rows if ok]
    assert len(complete) == 138 and len(rows) == 155
    for seg in complete:
        raw = hj212.frame(seg)
        p = hj212.parse(raw)
        assert p.segment() == seg, seg
        assert p.encode() == raw
        assert p.st in ("32", "91", "23") and len(p.cn) == 4 and p.flag in (4, 5)


def test_appendix_c_elided_examples_are_kept_losslessly_except_the_c19_typo():
    for table, ok, seg in appendix_c():
        if ok:
            continue
        if table == "C.19":  # printed as "...;Flag=5CP=&&..." (no ';')
            with raises(Hj212Error) as e:
                hj212.parse_segment(seg)
            assert e.value.reason == "bad-field"
            continue
        assert hj212.parse_segment(seg).segment() == seg, table


def test_examples_file_holds_every_complete_example_with_an_independent_crc():
    complete = set(seg.encode() for _, ok, seg in appendix_c() if ok)
    frames = [line + b"\r\n" for line in read_lines(EXAMPLES)]
    assert frames[0] == A_FRAME
    segs = set()
    for raw in frames[1:]:
        seg = raw[6:-6]
        assert int(raw[2:6]) == len(seg)
        assert int(raw[-6:-2], 16) == crc_appendix_a(seg)
        hj212.parse(raw)
        segs.add(seg)
    assert segs == complete
    assert len(frames) == len(complete) + 1


def test_whitespace_in_the_standards_examples_is_kept_but_ignored_by_get():
    # C.34 response, as printed: "CP=&& DataTime=20160801085857;VaseNo=1 &&"
    seg = ("QN=20160801085857223;ST=32;CN=3015;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
           "CP=&& DataTime=20160801085857;VaseNo=1 &&")
    p = hj212.parse_segment(seg)
    assert p.get("DataTime") == "20160801085857" and p.get("VaseNo") == "1"
    assert p.fields() == {"DataTime": "20160801085857", "VaseNo": "1"}
    assert p.segment() == seg
    # C.43 request: "MN=010000A8900016F000169DC0; Flag=5;CP=..."
    seg = ("QN=20160801085857223;ST=32;CN=3020;PW=123456;MN=010000A8900016F000169DC0; Flag=5;"
           "CP=&&PolId=w01018;InfoId=i12001&&")
    p = hj212.parse_segment(seg)
    assert p.flag == 5 and p.get("InfoId") == "i12001"
    assert p.segment() == seg
    p.flag = 4  # edits keep the sender's layout
    assert p.segment() == seg.replace("Flag=5", "Flag=4")


def test_replies_match_the_standards_9011_9012_9013_9014():
    checked = {"9011": 0, "9012": 0, "9013": 0, "9014": 0}
    by_table = {}
    for table, _, seg in appendix_c():
        by_table.setdefault(table, []).append(seg)
    for table in by_table:
        segs = by_table[table]
        for seg in segs:
            if ";ST=91;" not in seg or " " in seg:
                continue  # replies printed with stray spaces cannot be compared
            reply = hj212.parse_segment(seg)
            asked = None
            for other in segs:
                if ";ST=91;" in other or not other.startswith("QN=" + reply.qn + ";") or "Flag=5CP" in other:
                    continue  # (C.19 prints "Flag=5CP=&&")
                req = hj212.parse_segment(other)
                # 9014 answers an upload (sent with Flag A=1); 9011/9012/9013 answer the first packet
                if req.ack_wanted:
                    asked = req
                    break
            if asked is None:
                continue  # e.g. C.43: the printed 9011 does not echo the request's QN
            if reply.cn == "9011":
                built = hj212.reply_9011(asked, int(reply.get("QnRtn")))
            elif reply.cn == "9012":
                built = hj212.reply_9012(asked, int(reply.get("ExeRtn")))
            elif reply.cn == "9013":
                built = hj212.reply_9013(asked)
            else:
                built = hj212.reply_9014(asked)
            assert built.segment() == seg, (table, seg)
            checked[reply.cn] += 1
    assert checked["9011"] >= 25 and checked["9012"] >= 25, checked
    assert checked["9013"] >= 1 and checked["9014"] >= 10, checked


# ---- segment codec -------------------------------------------------------------------------------

def test_cp_groups_pairs_and_separators_are_kept():
    # C.23 as printed uses ',' between BeginTime and EndTime; C.20 uses ';'
    p = hj212.parse_segment("ST=32;CN=2041;PW=1;MN=1;CP=&&BeginTime=20160801000000,EndTime=20160801000000&&")
    assert p.cp == [[("BeginTime", "20160801000000"), ("EndTime", "20160801000000")]]
    p = hj212.parse_segment("ST=32;CN=2051;PW=1;MN=1;CP=&&BeginTime=20160801084000;EndTime=20160801084000&&")
    assert p.cp == [[("BeginTime", "20160801084000")], [("EndTime", "20160801084000")]]
    p = hj212.parse_segment("ST=32;CN=1061;PW=1;MN=1;CP=&&&&")
    assert p.cp == [] and p.cp_text() == ""


def test_2005_style_packet_without_qn_and_flag():
    raw = [f for f in good_frames() if b"MN=88888880000001" in f][0]
    p = hj212.parse(raw)
    assert p.qn is None and p.flag is None and p.version == 2005
    assert not p.ack_wanted and not p.is_split
    assert p.cp == [[("DataTime", "20040516020111")], [("B01-Rtd", "36.91")],
                    [("011-Rtd", "231.0"), ("011-Flag", "N")], [("060-Rtd", "1.803"), ("060-Flag", "N")]]
    assert p.get("011-Flag") == "N" and p.get("missing", "x") == "x"
    assert hj212.reply_9014(p).segment() == "ST=91;CN=9014;PW=123456;MN=88888880000001;CP=&&&&"


def test_text_values_are_opaque():
    raw = [f for f in good_frames() if b"i11001-Info=//" in f and "阀门".encode() in f][0]
    p = hj212.parse(raw)
    assert p.get("i11001-Info") == "//阀门;关,开=1&&2//"
    assert p.get("i12001-Info") == "1"
    assert p.cp == [[("DataTime", "20160801085857")], [("i11001-Info", "//阀门;关,开=1&&2//")],
                    [("i12001-Info", "1")]]


def test_header_order_is_kept_when_not_standard():
    raw = [f for f in good_frames() if f.startswith(b"##0140ST=32;CN=2011;QN=")][0]
    p = hj212.parse(raw)
    assert (p.qn, p.st, p.cn, p.pw, p.mn, p.flag) == (
        "20160801085857223", "32", "2011", "123456", "010000A8900016F000169DC0", 4)
    assert p.encode() == raw
    q = p.copy()  # a copy is written in the standard order
    assert q.segment().startswith("QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;"
                                  "Flag=4;CP=&&")


def test_build_uses_standard_order_and_flag():
    p = hj212.build("31", "2011", "123456", "31000000123456789ABCDEF0",
                    [[("DataTime", "20240315103000")], [("a21002-Rtd", "45.6"), ("a21002-Flag", "N")]],
                    qn="20240315103000123", ack=True)
    assert p.flag == 5 and p.ack_wanted and p.version == 2017
    assert p.segment() == ("QN=20240315103000123;ST=31;CN=2011;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;"
                           "CP=&&DataTime=20240315103000;a21002-Rtd=45.6,a21002-Flag=N&&")
    assert hj212.build("31", "2011", "1", "2").flag == 4
    assert hj212.build("31", "2011", "1", "2", version=2005).flag == 0


def test_flag_bits_and_versions():
    # Table 3: V5..V0 D A; 000000 = 2005, 000001 = 2017; "Flag=7: 2017, split, ack wanted"
    assert hj212.make_flag(2017, ack=True, split=True) == 7
    assert hj212.make_flag(2017) == 4 and hj212.make_flag(2017, ack=True) == 5
    assert hj212.make_flag(2017, split=True) == 6
    assert hj212.make_flag(2005) == 0 and hj212.make_flag(2005, ack=True) == 1
    assert hj212.make_flag(2025) == 8  # UNVERIFIED value, see versions.py
    with raises(ValueError):
        hj212.make_flag(2010)
    assert hj212.flag_version(5) == 2017 and hj212.flag_version(1) == 2005 and hj212.flag_version(9) == 2025
    assert hj212.flag_version(None) == 2005 and hj212.flag_version(0xFC) is None
    p = hj212.parse_segment("QN=20160801085857223;ST=32;CN=2061;PW=1;MN=1;Flag=7;PNUM=2;PNO=1;CP=&&&&")
    assert p.ack_wanted and p.is_split and p.version == 2017 and (p.pnum, p.pno) == ("2", "1")


def test_constants_match_the_standard_tables():
    assert (hj212.QNRTN_READY, hj212.QNRTN_REJECTED, hj212.QNRTN_PW, hj212.QNRTN_MN, hj212.QNRTN_ST,
            hj212.QNRTN_FLAG, hj212.QNRTN_QN, hj212.QNRTN_CN, hj212.QNRTN_CRC, hj212.QNRTN_UNKNOWN) == (
        1, 2, 3, 4, 5, 6, 7, 8, 9, 100)
    assert (hj212.EXERTN_OK, hj212.EXERTN_FAILED, hj212.EXERTN_BAD_CONDITION, hj212.EXERTN_TIMEOUT,
            hj212.EXERTN_BUSY, hj212.EXERTN_FAULT, hj212.EXERTN_NO_DATA) == (1, 2, 3, 4, 5, 6, 100)
    assert hj212.DATA_FLAGS == "NFMSDCTB"
    assert (hj212.DATA_NORMAL, hj212.DATA_STOPPED, hj212.DATA_MAINTENANCE, hj212.DATA_MANUAL,
            hj212.DATA_FAULT, hj212.DATA_CALIBRATION, hj212.DATA_OVER_RANGE,
            hj212.DATA_COMM_FAIL) == tuple("NFMSDCTB")


# ---- request validation --------------------------------------------------------------------------

REQ = ("QN=20160801085857223;ST=32;CN=1000;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"  # C.1
       "CP=&&OverTime=5;ReCount=3&&")
MN = "010000A8900016F000169DC0"


def _check(seg, **kw):
    kw.setdefault("st", "32")
    kw.setdefault("known_cns", ("1000", "1011", "2051"))
    with raises(Hj212Error) as e:
        hj212.check_request(hj212.frame(seg), MN, "123456", **kw)
    return e.value.reason, e.value.qn_rtn


def test_check_request_accepts_the_standards_request():
    p = hj212.check_request(hj212.frame(REQ), MN, "123456", st="32", known_cns=("1000",))
    assert p.get("OverTime") == "5"
    assert hj212.check_request(p, MN, "123456") is p


def test_check_request_each_fault_and_its_qnrtn():
    assert _check(REQ.replace("PW=123456", "PW=654321")) == ("wrong-pw", 3)
    assert _check(REQ.replace("MN=0100", "MN=0200")) == ("wrong-mn", 4)
    assert _check(REQ.replace("ST=32", "ST=31")) == ("wrong-st", 5)
    assert _check(REQ.replace("ST=32", "ST=3")) == ("bad-st", 5)
    assert _check(REQ.replace("Flag=5", "Flag=253")) == ("bad-flag", 6)  # version bits 111111
    assert _check(REQ.replace("QN=20160801085857223", "QN=2016080108585722")) == ("bad-qn", 7)
    assert _check(REQ.replace("QN=20160801085857223", "QN=20161301085857223")) == ("bad-qn", 7)
    assert _check(REQ.replace("QN=20160801085857223;", "")) == ("bad-qn", 7)
    assert _check(REQ.replace("CN=1000", "CN=1999")) == ("unknown-cn", 8)
    assert _check(REQ.replace("CN=1000", "CN=10x0")) == ("bad-cn", 8)
    assert _check(REQ.replace("Flag=5", "Flag=7;PNUM=2;PNO=1")) == ("split", 100)
    with raises(Hj212Error) as e:
        hj212.check_request(hj212.frame(REQ)[:-6] + b"0000\r\n", MN, "123456")
    assert (e.value.reason, e.value.qn_rtn) == ("crc", 9)
    # the platform's own replies (ST=91) are accepted whatever the station's ST
    hj212.check_request(hj212.frame(REQ.replace("ST=32", "ST=91")), MN, "123456", st="32")


def test_check_request_order_crc_qn_st_cn_pw_mn_flag():
    # every fault at once, then fixed one by one in the order of hj212.md 5.2
    seg = (REQ.replace("QN=20160801085857223", "QN=1").replace("ST=32", "ST=31").replace("CN=1000", "CN=1999")
           .replace("PW=123456", "PW=000000").replace("MN=0100", "MN=0200").replace("Flag=5", "Flag=253"))
    seen = []
    for fix in (("QN=1;", "QN=20160801085857223;"), ("ST=31", "ST=32"), ("CN=1999", "CN=1000"),
                ("PW=000000", "PW=123456"), ("MN=0200", "MN=0100"), ("Flag=253", "Flag=5")):
        seen.append(_check(seg)[1])
        seg = seg.replace(fix[0], fix[1])
    assert seen == [7, 5, 8, 3, 4, 6]
    hj212.check_request(hj212.frame(seg), MN, "123456", st="32", known_cns=("1000",))


def test_reply_flag_follows_the_request_version():
    req = hj212.parse_segment(REQ)
    assert hj212.reply_9012(req).flag == 4
    assert hj212.reply_9011(req.copy(flag=9)).flag == 8  # a 2025-style request gets a 2025-style reply
    assert hj212.reply_9013(req.copy(flag=1)).flag == 0
    r = hj212.reply_9012(req, hj212.EXERTN_NO_DATA)
    assert r.segment() == ("QN=20160801085857223;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;"
                           "CP=&&ExeRtn=100&&")


# ---- times ---------------------------------------------------------------------------------------

def test_qn_and_time_helpers():
    t = (2016, 8, 1, 8, 58, 57, 0, 214)
    assert hj212.qn_from_time(t, 223) == "20160801085857223"  # the Appendix C QN
    assert hj212.qn_now(t) == "20160801085857000"
    assert hj212.datatime(t) == "20160801085857"
    assert hj212.parse_time("20160801085857") == (2016, 8, 1, 8, 58, 57)
    for bad in ("2016080108585", "20161301085857", "20160230000000", "20160801240000", "2016080108585x"):
        with raises(Hj212Error):
            hj212.parse_time(bad)
    assert hj212.parse_time("20160229000000")[2] == 29  # leap year
    assert hj212.qn_add_ms("20160801085857534", 1) == "20160801085857535"  # C.49's two parts
    assert hj212.qn_add_ms("20161231235959999", 1) == "20170101000000000"
    assert hj212.qn_add_ms("20160228235959999", 1) == "20160229000000000"
    assert hj212.qn_add_ms("20150228235959999", 1) == "20150301000000000"
    assert hj212.qn_add_ms("21000228235959500", 1500) == "21000301000001000"  # 2100 is not a leap year
    assert hj212.qn_add_ms("20000229235959999", 1) == "20000301000000000"  # 2000 is


# ---- stream decoder ------------------------------------------------------------------------------

def _feed_all(data, sizes, max_buffer=4096):
    dec = hj212.StreamDecoder(max_buffer=max_buffer)
    out = []
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        k += 1
        out.extend(dec.feed(data[i:i + n]))
        assert dec.buffered <= max_buffer
        i += n
    out.extend(dec.flush())
    return out


def _kinds(items):
    return [("packet" if item.ok else item.reason) for item in items]


def test_stream_reassembles_frames_in_any_chunking():
    frames = good_frames()
    data = b"".join(frames)
    for sizes in ((1,), (2, 3), (7,), (64,), (1000,), (len(data),), (1, 200, 5, 1036)):
        out = _feed_all(data, sizes)
        assert _kinds(out) == ["packet"] * len(frames), sizes
        assert [p.raw for p in out] == frames


def test_stream_reports_each_bad_frame_and_recovers():
    good = A_FRAME
    for _, stream, raw, note in bad_frames():
        data = good + raw + good
        for sizes in ((1,), (5, 11), (4096,)):
            out = _feed_all(data, sizes)
            kinds = _kinds(out)
            assert kinds == ["packet"] + stream + ["packet"], (note, sizes, kinds)
            assert out[-1].raw == good and out[0].raw == good
            for item in out[1:-1]:
                assert item.raw is not None and item.raw in data
                if not item.ok:
                    assert item.qn_rtn == QNRTN.get(item.reason, 100)


def test_stream_skips_whitespace_and_reports_garbage():
    dec = hj212.StreamDecoder()
    assert dec.feed(b"\r\n \r\n") == []
    out = dec.feed(b"hello" + A_FRAME + b"\r\n")
    assert _kinds(out) == ["garbage", "packet"] and out[0].raw == b"\r\n \r\nhello"
    assert dec.feed(b"#") == []  # maybe the first half of "##"
    out = dec.feed(A_FRAME[1:])
    assert _kinds(out) == ["packet"]


def test_stream_buffer_is_bounded():
    dec = hj212.StreamDecoder(max_buffer=2048)
    seen = []
    seen.extend(dec.feed(b"##12x4"))
    for _ in range(10):
        seen.extend(dec.feed(b"y" * 500))
        assert dec.buffered <= 2048
    # a bad header waits for its end (CRLF or "##") up to max_buffer: 6 + 5 * 500 bytes overflow;
    # the 2500 'y' after it are skipped bytes: 1500 reported at once (> 1024), 1000 held
    assert _kinds(seen) == ["overflow", "garbage"]
    assert seen[0].raw == b"##12x4" + b"y" * 2500 and seen[1].raw == b"y" * 1500
    out = dec.feed(A_FRAME)
    assert _kinds(out) == ["garbage", "packet"] and out[0].raw == b"y" * 1000
    dec = hj212.StreamDecoder(max_buffer=2048)
    seen = []
    for _ in range(10):
        seen.extend(dec.feed(b"z" * 500))
        assert dec.buffered <= 2048
    # skipped bytes are held until a frame starts; past 1024 they are reported and dropped:
    # 500, 1000, 1500 -> reported, three times, then 500 held
    assert _kinds(seen) == ["garbage"] * 3 and [len(e.raw) for e in seen] == [1500] * 3
    out = dec.feed(A_FRAME)
    assert _kinds(out) == ["garbage", "packet"] and out[0].raw == b"z" * 500
    with raises(ValueError):
        hj212.StreamDecoder(max_buffer=1000)


def test_stream_flush_reports_partial_frame():
    dec = hj212.StreamDecoder()
    assert dec.feed(A_FRAME[:50]) == []
    out = dec.flush()
    assert _kinds(out) == ["truncated"] and out[0].raw == A_FRAME[:50]
    assert dec.buffered == 0 and dec.flush() == []


def test_stream_random_chunks_and_mixed_frames():
    goods = good_frames()
    bads = bad_frames()
    rnd = Lcg(2024)
    for _ in range(5):
        data = []
        expected = []
        for _ in range(12):
            if rnd.next(3):
                f = goods[rnd.next(len(goods))]
                data.append(f)
                expected.append("packet")
            else:
                # a bad frame is closed off by the good frame after it (two bad frames in a row
                # can merge into one bad span, whose reason then depends on both)
                reason, stream, raw, note = bads[rnd.next(len(bads))]
                data.append(raw + A_FRAME)
                expected.extend(stream + ["packet"])
        blob = b"".join(data)
        sizes = [1 + rnd.next(300) for _ in range(40)]
        assert _kinds(_feed_all(blob, sizes)) == expected


# ---- split / reassembly --------------------------------------------------------------------------

def _big_minute_packet(n_pollutants):
    groups = [[("DataTime", "20240315102000")]]
    for i in range(n_pollutants):
        code = "a%05d" % (21000 + i)
        groups.append([(code + "-Cou", "0.965"), (code + "-Min", "41.2"), (code + "-Avg", "45.6"),
                       (code + "-Max", "50.3"), (code + "-ZsAvg", "56.5"), (code + "-Flag", "N")])
    return hj212.build("31", "2051", "123456", "31000000123456789ABCDEF0", groups, qn="20240315103000999",
                       ack=True)


def test_split_and_reassemble_a_long_record():
    p = _big_minute_packet(30)
    # by hand: each pollutant group is 96 bytes (+1 for its ';'); a part's fixed text is 123 bytes
    # (header with Flag=7;PNUM=4;PNO=n; 98, "DataTime=20240315102000" 23, "&&" 2) -> 9 groups per part
    assert len(p.segment()) > 2 * 1024
    parts = hj212.split(p)
    assert [len(q.cp) - 1 for q in parts] == [9, 9, 9, 3]
    for i in range(len(parts)):
        part = parts[i]
        seg = part.segment().encode()
        assert len(seg) <= 1024
        assert part.flag == 7 and part.pnum == "4" and part.pno == str(i + 1)
        assert part.cp[0] == [("DataTime", "20240315102000")]
        assert ";Flag=7;PNUM=4;PNO=%d;CP=&&DataTime=20240315102000;" % (i + 1) in part.segment()
    assert len(parts[0].segment()) == 123 + 9 * 97
    assert [q.qn for q in parts] == ["20240315103000999", "20240315103001000", "20240315103001001",
                                     "20240315103001002"]
    # every pollutant group in exactly one part, in order
    groups = []
    for part in parts:
        groups.extend(part.cp[1:])
    assert groups == p.cp[1:]
    # reassemble from the wire, parts out of order and one repeated
    frames = [q.encode() for q in parts]
    r = hj212.Reassembler()
    got = []
    for raw in (frames[2], frames[0], frames[3], frames[2], frames[1]):
        for item in hj212.StreamDecoder().feed(raw):
            got.append(r.add(item))
    assert got[:4] == [None, None, None, None]
    merged = got[4]
    assert merged.segment() == p.segment() and merged.flag == 5 and r.pending == 0


def test_split_leaves_small_packets_alone_and_refuses_huge_groups():
    p = _big_minute_packet(3)
    assert hj212.split(p) == [p]
    huge = hj212.build("31", "2051", "1", "2", [[("k%d" % i, "v") for i in range(300)]])
    with raises(Hj212Error) as e:
        hj212.split(huge)
    assert e.value.reason == "too-long"


def test_split_without_datatime_and_with_given_qns():
    groups = [[("x%03d-Rtd" % i, "1.0")] for i in range(200)]
    p = hj212.build("31", "2011", "1", "2", groups, qn="20240315103000000")
    parts = hj212.split(p, max_segment=600, qns=["q%d" % i for i in range(10)])
    assert all(len(q.segment()) <= 600 for q in parts)
    assert [q.qn for q in parts] == ["q%d" % i for i in range(len(parts))]
    flat = []
    for q in parts:
        flat.extend(q.cp)
    assert flat == groups
    r = hj212.Reassembler()
    results = [r.add(hj212.parse(q.encode())) for q in parts]
    assert results[-1].cp == groups and all(x is None for x in results[:-1])


def test_reassemble_the_standards_c49_parts():
    parts = [hj212.parse(f) for f in good_frames() if b";Flag=6;PNUM=2;" in f]
    assert len(parts) == 2
    r = hj212.Reassembler()
    assert r.add(parts[0]) is None
    merged = r.add(parts[1])
    assert merged.qn == "20160801085857534" and merged.flag == 4 and merged.pnum is None
    assert merged.get("w00000-Cou") == "63.0" and merged.get("w01018-Max") == "40.1"
    assert merged.cp_text() == ("DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,"
                                "w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,"
                                "w01001-Flag=N;w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,"
                                "w01018-Max=40.1,w01018-Flag=N")


def test_reassembler_bounds_and_bad_numbers():
    r = hj212.Reassembler(max_pending=2)
    base = ("QN=20160801085857534;ST=32;CN=2061;PW=1;MN=1;Flag=6;PNUM=2;PNO=1;"
            "CP=&&DataTime=20160801%02d0000;a=1&&")
    for hour in range(5):  # five records, each still missing its part 2
        assert r.add(hj212.parse_segment(base % hour)) is None
        assert r.pending == min(hour + 1, 2)
    assert r.add(hj212.parse_segment((base % 0).replace("PNO=1", "PNO=2"))) is None  # hour 0 was dropped
    merged = r.add(hj212.parse_segment((base % 4).replace("PNO=1", "PNO=2")))
    assert merged.cp_text() == "DataTime=20160801040000;a=1;a=1"
    for bad in ("PNUM=2;PNO=3", "PNUM=x;PNO=1", "PNUM=0;PNO=0"):
        with raises(Hj212Error) as e:
            r.add(hj212.parse_segment((base % 0).replace("PNUM=2;PNO=1", bad)))
        assert e.value.reason == "bad-split"
    plain = hj212.parse_segment(REQ)
    assert r.add(plain) is plain
