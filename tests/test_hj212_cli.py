"""`emlog hj212 check|decode|encode` through host_tools.cli.main, with capsys.

Frames come from the standard (Appendix A vector), docs/hj212.md section 8 and the corpus files,
whose CRCs were not produced by the code under test.
"""

import io
import json
import sys

import pytest

from host_tools import REPO_ROOT
from host_tools.cli import main

A_FRAME = ("##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
           "CP=&&RtdInterval=30&&1C80")
DOC_9014 = ("##0087QN=20240315103000123;ST=91;CN=9014;PW=123456;MN=31000000123456789ABCDEF0;Flag=4;"
            "CP=&&&&AB41")  # hj212.md 8.1
DOC_LOG = ("##0152QN=20160801085857223;ST=32;CN=3020;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
           "CP=&&DataTime=20160801085857;PolId=w01018;i11001-Info=//清洗管路//&&9481")  # hj212.md 8.5


def run(capsys, *argv):
    code = main(["hj212", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_standard_examples_all_ok(capsys):
    code, out, err = run(capsys, "check", str(REPO_ROOT / "examples" / "hj212" / "standard-examples.txt"))
    lines = out.splitlines()
    assert code == 0
    assert len(lines) >= 60 and all(line.startswith("OK line ") for line in lines)
    assert "CN=1062 QN=20160801085857223" in lines[0]
    assert "0 bad" in err


def test_check_mixed_file_reports_each_frame(tmp_path, capsys):
    f = tmp_path / "frames.txt"
    f.write_bytes(("# a comment\n" + A_FRAME + "\r\n\n" + A_FRAME[:-1] + "1\n" + DOC_LOG + "\\r\\n\n"
                   + "##0102" + A_FRAME[6:] + "\n").encode("utf-8"))
    code, out, err = run(capsys, "check", str(f))
    assert code == 1
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["OK", "line"], ["ERR", "crc"], ["OK", "line"], ["ERR", "length"]]
    assert " line 2:" in out.splitlines()[0] and " line 4:" in out.splitlines()[1]
    assert "4 frames: 2 OK, 2 bad" in err


def test_check_bad_corpus_reasons(tmp_path, capsys):
    # frames of bad.txt that survive the one-frame-per-line format (no CR/LF damage)
    rows = []
    for line in (REPO_ROOT / "tests" / "data" / "hj212" / "bad.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        reason, _, escaped, _ = line.split("\t")
        raw = escaped.encode("latin-1").decode("unicode_escape").encode("latin-1")
        if raw.endswith(b"\r\n") and b"\n" not in raw[:-2] and b"\r" not in raw[:-2]:
            rows.append((reason, raw[:-2]))
    assert len(rows) >= 20
    f = tmp_path / "bad.txt"
    f.write_bytes(b"\n".join(raw for _, raw in rows) + b"\n")
    code, out, _ = run(capsys, "check", str(f))
    assert code == 1
    assert [line.split()[:2] for line in out.splitlines()] == [["ERR", reason] for reason, _ in rows]


def test_check_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((A_FRAME + "\r\n" + DOC_9014).encode())))
    code, out, _ = run(capsys, "check")
    assert code == 0 and len(out.splitlines()) == 2


def test_check_empty_input_is_not_success(tmp_path, capsys):
    f = tmp_path / "empty.txt"
    f.write_text("# nothing here\n\n")
    code, out, err = run(capsys, "check", str(f))
    assert code == 1 and out == "" and "no frames" in err


def test_decode_prints_json_per_frame(tmp_path, capsys):
    f = tmp_path / "frames.txt"
    f.write_text("\n".join([DOC_LOG, A_FRAME[:-4] + "1c81", "##01", DOC_9014]) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, "decode", str(f))
    assert code == 1
    objs = [json.loads(line) for line in out.splitlines()]
    assert len(objs) == 4
    log, crc, short, ack = objs
    assert log["ok"] and log["crc_ok"] is True and log["length"] == 152 and log["cn"] == "3020"
    assert log["fields"] == {"DataTime": "20160801085857", "PolId": "w01018", "i11001-Info": "//清洗管路//"}
    assert log["cp"] == [[["DataTime", "20160801085857"]], [["PolId", "w01018"]],
                         [["i11001-Info", "//清洗管路//"]]]
    assert log["flag"] == 5 and log["version"] == 2017 and log["ack_wanted"] and not log["is_split"]
    assert not crc["ok"] and crc["error"] == "crc" and crc["crc_ok"] is False and crc["qn_rtn"] == 9
    assert crc["cn"] == "1062" and crc["fields"] == {"RtdInterval": "30"}  # header still shown
    # a line gets its CRLF back, so a cut-short line is a frame whose length field disagrees
    assert short["error"] == "length" and short["crc_ok"] is None and "cn" not in short
    assert ack["ok"] and ack["cp"] == [] and ack["qn"] == "20240315103000123"


def test_encode_frames_segments(tmp_path, capsys):
    f = tmp_path / "segs.txt"
    seg = A_FRAME[6:-4]
    f.write_text(seg + "\n" + "QN=1;ST=32;CP=&&x\n")
    code, out, err = run(capsys, "encode", str(f))
    assert code == 1
    assert out.splitlines() == [A_FRAME]
    assert "line 2: ERR bad-cp" in err


def test_encode_crlf_writes_raw_frames(tmp_path, capsysbinary):
    f = tmp_path / "segs.txt"
    f.write_text(A_FRAME[6:-4] + "\n")
    assert main(["hj212", "encode", "--crlf", str(f)]) == 0
    out, _ = capsysbinary.readouterr()
    assert out == (A_FRAME + "\r\n").encode()


@pytest.mark.parametrize("action", ["check", "decode", "encode"])
def test_missing_file_is_a_user_error_without_traceback(tmp_path, capsys, action):
    code, out, err = run(capsys, action, str(tmp_path / "nope.txt"))
    assert code == 2 and out == ""
    assert err.startswith("emlog: error: ") and "no such file" in err and "Traceback" not in err


def test_directory_is_a_user_error(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == 2 and "is a directory" in err and "Traceback" not in err


def test_no_action_prints_usage(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "check" in out and "decode" in out
