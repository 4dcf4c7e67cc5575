"""Regenerates tests/data/hj212/good.txt and bad.txt (not a test).

    python tests/data/hj212/make_corpus.py

Every CRC written here comes from a bitwise transcription of the standard's Appendix A (below),
never from protocols.hj212; the expected reason of each bad frame is chosen by hand from how it
was damaged. Frames copied from docs/hj212.md keep the CRCs printed there.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the reference CRC
from hj212_reference import crc_appendix_a

HERE = Path(__file__).resolve().parent




def framed(segment, length=None, crc=None, tail=b"\r\n"):
    data = segment.encode("utf-8") if isinstance(segment, str) else segment
    n = len(data) if length is None else length
    c = ("%04X" % crc_appendix_a(data)).encode() if crc is None else crc
    return b"##" + (b"%04d" % n if isinstance(n, int) else n) + data + c + tail


def escape(raw):
    out = []
    for b in raw:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09 or b < 0x20 or b > 0x7E:
            out.append("\\x%02x" % b)
        else:
            out.append(chr(b))
    return "".join(out)


A_SEG = ("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
         "CP=&&RtdInterval=30&&")
A = framed(A_SEG)
assert A.endswith(b"1C80\r\n")  # the Appendix A vector

DOC_FRAMES = """\
##0493QN=20240315103000123;ST=31;CN=2011;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&DataTime=20240315103000;a21002-Rtd=45.6,a21002-ZsRtd=56.5,a21002-Flag=N;a21003-Rtd=28.3,a21003-Flag=N;a21004-Rtd=2.2,a21004-Flag=N;a21026-Rtd=12.5,a21026-ZsRtd=15.5,a21026-Flag=N;a34013-Rtd=3.2,a34013-ZsRtd=4.0,a34013-Flag=N;a19001-Rtd=8.9,a19001-Flag=N;a00000-Rtd=35.27,a00000-Flag=N;a01011-Rtd=12.35,a01011-Flag=N;a01012-Rtd=55.2,a01012-Flag=N;a01013-Rtd=-0.215,a01013-Flag=N;a01014-Rtd=9.8,a01014-Flag=N&&A001
##0087QN=20240315103000123;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&AB41
##0638QN=20240315103000456;ST=31;CN=2051;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&DataTime=20240315102000;a00000-Cou=21162.0,a00000-Min=34.80,a00000-Avg=35.27,a00000-Max=35.90,a00000-Flag=N;a21002-Cou=0.965,a21002-Min=41.2,a21002-Avg=45.6,a21002-Max=50.3,a21002-ZsMin=51.1,a21002-ZsAvg=56.5,a21002-ZsMax=62.4,a21002-Flag=N;a21026-Cou=0.265,a21026-Min=11.0,a21026-Avg=12.5,a21026-Max=14.1,a21026-ZsAvg=15.5,a21026-Flag=N;a34013-Cou=0.068,a34013-Min=2.9,a34013-Avg=3.2,a34013-Max=3.6,a34013-ZsAvg=4.0,a34013-Flag=N;a19001-Min=8.6,a19001-Avg=8.9,a19001-Max=9.3,a19001-Flag=N;a01012-Min=54.8,a01012-Avg=55.2,a01012-Max=55.9,a01012-Flag=N&&D581
##0087QN=20240315103000456;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&CB81
##0134QN=20240315110512001;ST=31;CN=2061;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&BeginTime=20240315080000;EndTime=20240315090000&&E681
##0094QN=20240315110512001;ST=91;CN=9011;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&QnRtn=1&&D4C1
##0351QN=20240315110512350;ST=31;CN=2061;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&DataTime=20240315080000;a00000-Cou=126972.0,a00000-Min=34.10,a00000-Avg=35.27,a00000-Max=36.20,a00000-Flag=N;a21002-Cou=5.790,a21002-Min=40.8,a21002-Avg=45.6,a21002-Max=52.0,a21002-ZsAvg=56.5,a21002-Flag=N;a19001-Min=8.4,a19001-Avg=8.9,a19001-Max=9.6,a19001-Flag=N&&C181
##0087QN=20240315110512350;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&47C0
##0095QN=20240315110512001;ST=91;CN=9012;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&ExeRtn=1&&3600
##0087QN=20240315000500001;ST=31;CN=1013;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&&&4A40
##0087QN=20240315000500001;ST=91;CN=9013;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&&&5440
##0112QN=20240315000501200;ST=31;CN=1012;PW=123456;MN=31000000123456789ABCDEF0;Flag=5;CP=&&SystemTime=20240315000501&&FE41
##0094QN=20240315000501200;ST=91;CN=9011;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&QnRtn=1&&9601
##0095QN=20240315000501200;ST=91;CN=9012;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;CP=&&ExeRtn=1&&0780
##0152QN=20160801085857223;ST=32;CN=3020;PW=123456;MN=010000A8900016F000169DC0;Flag=5;CP=&&DataTime=20160801085857;PolId=w01018;i11001-Info=//清洗管路//&&9481"""

MADE = [
    ("2005 style: no QN, no Flag, 14-char MN, 2005 pollutant codes, ';' between every item",
     "ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20040516020111;B01-Rtd=36.91;011-Rtd=231.0,"
     "011-Flag=N;060-Rtd=1.803,060-Flag=N&&"),
    ("Flag=8: version bits 000010 (2025 as implemented by caoyiliang/HJ212; UNVERIFIED)",
     "QN=20260105120000001;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=8;"
     "CP=&&DataTime=20260105120000;w01018-Rtd=40.1,w01018-Flag=N&&"),
    ("header fields out of the standard's order (Flag before MN, QN after CN)",
     "ST=32;CN=2011;QN=20160801085857223;PW=123456;Flag=4;MN=010000A8900016F000169DC0;"
     "CP=&&DataTime=20160801085857;w01018-Rtd=40.1,w01018-Flag=N&&"),
    ("C.49 part 1 with the standard's '…' removed (Flag=6, PNUM/PNO)",
     "QN=20160801085857534;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=6;PNUM=2;PNO=1;"
     "CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,"
     "w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N&&"),
    ("C.49 part 2 with the standard's '…' removed",
     "QN=20160801085857535;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=6;PNUM=2;PNO=2;"
     "CP=&&DataTime=20160801080000;w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,"
     "w01018-Flag=N&&"),
    ("log text holding ; , = and && and UTF-8",
     "QN=20160801085857223;ST=32;CN=3020;PW=123456;MN=010000A8900016F000169DC0;Flag=4;"
     "CP=&&DataTime=20160801085857;i11001-Info=//阀门;关,开=1&&2//;i12001-Info=1&&"),
]

BAD = [
    ("crc", "CRC changed by one", A[:-6] + b"1C81\r\n"),
    ("crc", "CRC-16/MODBUS of the same segment (hj212.md 1.2)", A[:-6] + b"0759\r\n"),
    ("crc", "CRC not hex", A[:-6] + b"1C8G\r\n"),
    ("crc", "CRC with a sign", A[:-6] + b"+C80\r\n"),
    ("crc", "one segment byte changed", A.replace(b"RtdInterval=30", b"RtdInterval=31")),
    ("length", "length field one too large", b"##0102" + A[6:]),
    ("length", "length field one too small", b"##0100" + A[6:]),
    ("length", "length field not digits", b"##01a1" + A[6:]),
    ("length", "length field with a space", b"## 101" + A[6:]),
    ("length", "bytes after the CRLF", A + b"x"),
    ("truncated", "cut inside the segment", A[:40]),
    ("truncated", "cut inside the length field", A[:4]),
    ("truncated", "cut inside the CRC", A[:-4]),
    ("no-crlf", "CRLF missing", A[:-2]),
    ("no-crlf", "LF LF instead of CRLF", A[:-2] + b"\n\n"),
    ("too-long", "length field 1025", framed("QN=1;ST=32;CN=2011;PW=1;MN=1;CP=&&&&", length=1025)),
    ("too-long", "1100-byte segment, correct length and CRC",
     framed("ST=32;CN=2011;PW=123456;MN=1;CP=&&" + ";".join(["a%05d-Rtd=1.0" % i for i in range(82)])
            + "&&")),
    ("header", "single #", b"#" + A[2:]),
    ("header", "no header", b"&&" + A[2:]),
    ("non-ascii-header", "MN with a Chinese character (length and CRC right)",
     framed("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=数采仪;Flag=5;CP=&&RtdInterval=30&&")),
    ("non-ascii-header", "Latin-1 byte in PW (length and CRC right)",
     framed(b"QN=20160801085857223;ST=32;CN=1062;PW=10000\xe9;MN=1;Flag=5;CP=&&RtdInterval=30&&")),
    ("utf8", "invalid UTF-8 in the CP (length and CRC right)",
     framed(b"QN=20160801085857223;ST=32;CN=3020;PW=1;MN=1;Flag=5;CP=&&i11001-Info=//\xff\xfe//&&")),
    ("bad-cp", "no CP", framed("QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=1;Flag=5")),
    ("bad-cp", "CP not closed",
     framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=5;CP=&&RtdInterval=30")),
    ("bad-cp", "CP=&&& only", framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=5;CP=&&&")),
    ("bad-field", "standard C.19 typo: no ';' before CP",
     framed("QN=20160802000000001;ST=32;CN=2041;PW=123456;MN=010000A8900016F000169DC0;Flag=5CP=&&&&")),
    ("bad-field", "unknown header field",
     framed("QN=20160801085857223;XX=1;ST=32;CN=1062;PW=1;MN=1;CP=&&&&")),
    ("bad-field", "duplicate ST", framed("QN=20160801085857223;ST=32;ST=32;CN=1062;PW=1;MN=1;CP=&&&&")),
    ("bad-field", "header item without '='", framed("QN=20160801085857223;ST32;CN=1062;PW=1;MN=1;CP=&&&&")),
    ("bad-flag", "Flag not a number", framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=x;CP=&&&&")),
    ("bad-flag", "Flag 256", framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=256;CP=&&&&")),
    ("bad-flag", "Flag with a leading zero",
     framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=05;CP=&&&&")),
    ("bad-flag", "empty Flag", framed("QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=;CP=&&&&")),
]

# What a stream decoder sees differs from parse() for these: no "##" means skipped bytes.
STREAM = {
    "bytes after the CRLF": "packet,garbage",
    "single #": "garbage",
    "no header": "garbage",
}


def main():
    good = [
        "# Good frames, one per line, CRLF omitted (the test adds it). '#' lines (not '##') are comments.",
        "# Generated by make_corpus.py. CRCs: Appendix A's printed one, the ones printed in",
        "# docs/hj212.md section 8, else a bitwise transcription of Appendix A (never protocols.hj212).",
        "# HJ 212-2017 Appendix A example:",
        A[:-2].decode(),
        "# the same with a lower-case CRC (accepted):",
        A[:-6].decode() + "1c80",
        "# docs/hj212.md section 8 examples (CRCs as printed there):",
    ]
    good.extend(DOC_FRAMES.split("\n"))
    for note, seg in MADE:
        good.append("# " + note)
        good.append(framed(seg)[:-2].decode("utf-8"))
    (HERE / "good.txt").write_text("\n".join(good) + "\n", encoding="utf-8")
    bad = [
        "# Bad frames: <reason from parse()> TAB <StreamDecoder results when the frame is sent between two",
        "# good frames, between those two> TAB <frame bytes, escaped: \\r \\n \\\\ \\xHH> TAB <the damage>.",
        "# Generated by make_corpus.py from the Appendix A vector or from segments framed with a bitwise",
        "# Appendix A CRC; only the damage named in the last column is wrong with each frame.",
    ]
    for reason, note, raw in BAD:
        bad.append("%s\t%s\t%s\t%s" % (reason, STREAM.get(note, reason), escape(raw), note))
    (HERE / "bad.txt").write_text("\n".join(bad) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
