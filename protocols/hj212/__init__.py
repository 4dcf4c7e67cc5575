"""HJ 212 (污染物在线监控（监测）系统数据传输标准) protocol core, for the logger and the platform.

Runs unchanged on CPython 3.11+ and MicroPython 1.19+; never reads the clock (pass time tuples).
Every name below is `hj212.<name>`; the submodule holding it is imported on first use (a device that
never splits a packet never loads the splitting code). The host-only names live in host.py.

Frames
    crc16(data, crc=0xFFFF) -> int       Appendix A CRC (NOT CRC-16/MODBUS); crc_hex(data) -> "1C80"
    frame(segment) -> bytes              "##" + 4-digit UTF-8 byte length + segment + CRC + CRLF
    parse(frame_bytes) -> Packet         checks framing, length, CRC, header; raises Hj212Error
    unframe(frame_bytes) -> bytes        framing/CRC checks only, returns the data segment
    parse_segment(str|bytes) -> Packet   the segment codec alone
    StreamDecoder(max_buffer=4096)       .feed(chunk) -> [Packet | Hj212Error, ...]; .flush() at close

Packet (header strings as on the wire, None when absent; `flag` int or None)
    .qn .st .cn .pw .mn .flag .pnum .pno   .cp = [[(key, value), ...], ...] (`;` groups of `,` pairs)
    .raw (frame bytes when decoded) .get(key, default=None) .fields() -> dict .segment() -> str
    .encode() -> bytes .copy(**changes) .cp_text() ; properties .ack_wanted .is_split .version .ok
    Parse then encode is byte-identical (header order, separators, whitespace are kept).
    Packet(st, cn, pw, mn, cp=None, qn=None, flag=None, pnum=None, pno=None)
    build(st, cn, pw, mn, cp=None, qn=None, ack=False, version=2017, flag=None) -> Packet
    Values containing `;`, `,` or `&&` must be `//text//` (opaque; may also hold `=` and UTF-8).

Flag / versions (versions.py; 2025 = 2 is UNVERIFIED and lives only there)
    FLAG_A, FLAG_D, VERSION_BITS, make_flag(version=2017, ack=False, split=False), flag_version(flag)

Times
    datatime(t) -> "YYYYMMDDhhmmss", qn_from_time(t, ms=0) (alias qn_now) -> 17-digit QN,
    parse_time(text) -> (y, mo, d, h, mi, s), qn_add_ms(qn, ms)

Splitting
    split(packet, max_segment=1024, qns=None) -> [Packet]   PNUM/PNO parts, DataTime repeated (C.49)
    Reassembler(max_pending=8).add(packet) -> merged Packet | None

Logger side
    check_request(packet_or_bytes, mn, pw, st=None, known_cns=None) -> Packet, raises Hj212Error
    reply_9011(req, qn_rtn=1), reply_9012(req, exe_rtn=1), reply_9013(req), reply_9014(req),
    reply(req, cn, cp=None): same QN/PW/MN, ST=91, Flag = request's version bits (2017: 4)

Errors: Hj212Error(reason, detail=None, qn_rtn=None, packet=None) with .reason, .qn_rtn, .raw, .packet.
    framing: "header" "truncated" "length" "too-long" "no-crlf" "crc"(9) | stream: "garbage" "overflow"
    segment: "non-ascii-header" "utf8" "bad-cp" "bad-field" "bad-flag"(6)
    request: "bad-qn"(7) "bad-st"/"wrong-st"(5) "bad-cn"/"unknown-cn"(8) "bad-pw"/"wrong-pw"(3)
             "wrong-mn"(4) "split" | split: "bad-split" | times: "bad-time". Unlisted codes: QnRtn 100.
Constants: QNRTN_*, EXERTN_*, DATA_* (N F M S D C T B), DATA_FLAGS, ST_SYSTEM, CN_REQUEST_REPLY (9011),
    CN_EXE_RESULT (9012), CN_NOTIFY_REPLY (9013), CN_DATA_ACK (9014), MAX_SEGMENT, PLATFORM_CNS (Table 9
    commands a platform may send).
"""

# Where each name lives: " <submodule>: <names>", one string (no dict or tuple built at import).
_WHERE = (
    " codes: CN_DATA_ACK CN_EXE_RESULT CN_NOTIFY_REPLY CN_REQUEST_REPLY DATA_CALIBRATION DATA_COMM_FAIL "
    "DATA_FAULT DATA_FLAGS DATA_MAINTENANCE DATA_MANUAL DATA_NORMAL DATA_OVER_RANGE DATA_STOPPED "
    "EXERTN_BAD_CONDITION EXERTN_BUSY EXERTN_FAILED EXERTN_FAULT EXERTN_NO_DATA EXERTN_OK EXERTN_TIMEOUT "
    "Hj212Error PLATFORM_CNS QNRTN_CN QNRTN_CRC QNRTN_FLAG QNRTN_MN QNRTN_PW QNRTN_QN QNRTN_READY "
    "QNRTN_REJECTED QNRTN_ST QNRTN_UNKNOWN ST_SYSTEM"
    " crc: crc16"
    " host: build crc_hex qn_now Reassembler reply_9014"
    " packet: datatime frame MAX_SEGMENT Packet parse_cp parse_segment parse_time qn_add_ms qn_from_time"
    " parts: split"
    " replies: check_request reply reply_9011 reply_9012 reply_9013 reply_flag"
    " versions: FLAG_A FLAG_D flag_version make_flag VERSION_BITS"
    " wire: parse StreamDecoder unframe"
    " "
)


def __getattr__(name):
    # PEP 562 (MicroPython: MICROPY_MODULE_GETATTR): import the submodule holding `name`, keep `name`
    # as a global so the next lookup is direct.
    i = _WHERE.find(" %s " % name)
    if i < 0:
        if _WHERE.find(" %s:" % name) < 0:
            raise AttributeError(name)
        # `from protocols.hj212 import wire`: MicroPython asks here before it imports a submodule
        return __import__(name, globals(), None, (name,), 1)
    end = _WHERE.rfind(":", 0, i)
    value = getattr(__import__(_WHERE[_WHERE.rfind(" ", 0, end) + 1 : end], globals(), None, (name,), 1), name)
    globals()[name] = value
    return value
