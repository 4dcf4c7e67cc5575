"""Modbus RTU frames: CRC, requests and responses of every function code, errors, chunked framing.

Expected bytes come from the Modbus Application Protocol specification's PDU examples (V1.1b3,
section 6) and from widely published RTU frames whose CRCs are confirmed against pymodbus in
test_modbus_peers.py; none were produced by the code under test.
"""

import binascii

from portable import raises

from protocols.modbus import crc, errors, host, rtu, slave

INTERPRETERS = ("cpython", "micropython")


def h(text):
    return binascii.unhexlify(text.replace(" ", ""))


def frame(text):
    """Hex text plus its CRC given separately in the text: 'pdu.. | lo hi'."""
    return h(text.replace("|", ""))


# ---- CRC -----------------------------------------------------------------------------------------

# (frame without CRC, CRC bytes as sent on the wire)
CRC_VECTORS = [
    ("01 03 00 00 00 0A", "C5 CD"),  # the brief's vector
    ("01 03 00 00 00 01", "84 0A"),
    ("01 03 00 03 00 01", "74 0A"),  # ESPHome uart_mock fixture
    ("01 03 02 01 03", "F9 D5"),  # its response
    ("01 06 00 01 00 03", "98 0B"),
    ("11 03 00 6B 00 03", "76 87"),  # the classic read-holding example for slave 0x11
]


def test_crc_published_vectors():
    for body, wire in CRC_VECTORS:
        value = crc.crc16(h(body))
        got = bytes((value & 0xFF, value >> 8))
        assert got == h(wire), (body, binascii.hexlify(got))
        assert crc.with_crc(h(body)) == h(body + wire)
        assert crc.crc_ok(h(body + wire))


def test_crc_catalogue_check_value():
    # CRC-16/MODBUS check value from the CRC catalogue: "123456789" -> 0x4B37
    assert crc.crc16(b"123456789") == 0x4B37
    assert crc.crc16(b"") == 0xFFFF


def test_crc_tables_match_the_polynomial():
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        assert crc._LO[i] == c & 0xFF and crc._HI[i] == c >> 8, i


def test_crc_ranges_and_buffer_types():
    body = h("11 03 00 6B 00 03")
    padded = b"\xaa\xbb" + body + b"\xcc"
    assert crc.crc16(padded, 2, 2 + len(body)) == crc.crc16(body)
    for kind in (bytes, bytearray, memoryview):
        assert crc.crc16(kind(body)) == 0x8776
    buf = bytearray(10)
    buf[0:6] = body
    assert crc.put_crc(buf, 6) == 8
    assert bytes(buf[:8]) == h("11 03 00 6B 00 03 76 87")
    assert crc.crc_ok(buf, 8)
    assert not crc.crc_ok(h("11 03 00 6B 00 03 87 76"))
    assert not crc.crc_ok(b"\x01")


# ---- requests: spec PDU examples ------------------------------------------------------------------

SPEC_REQUESTS = [
    # (builder call result, PDU hex from the specification)
    (lambda: host.read_coils(0x11, 19, 19), "01 00 13 00 13"),
    (lambda: host.read_discrete_inputs(0x11, 196, 22), "02 00 C4 00 16"),
    (lambda: host.read_holding_registers(0x11, 107, 3), "03 00 6B 00 03"),
    (lambda: host.read_input_registers(0x11, 8, 1), "04 00 08 00 01"),
    (lambda: host.write_coil(0x11, 172, True), "05 00 AC FF 00"),
    (lambda: host.write_coil(0x11, 172, False), "05 00 AC 00 00"),
    (lambda: host.write_register(0x11, 1, 3), "06 00 01 00 03"),
    (lambda: host.write_coils(0x11, 19, [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]), "0F 00 13 00 0A 02 CD 01"),
    (lambda: host.write_registers(0x11, 1, [0x000A, 0x0102]), "10 00 01 00 02 04 00 0A 01 02"),
    (lambda: host.write_registers(0x11, 1, h("00 0A 01 02")), "10 00 01 00 02 04 00 0A 01 02"),
]


def test_requests_match_spec_pdus():
    for build, pdu in SPEC_REQUESTS:
        adu = build()
        assert adu[0] == 0x11
        assert adu[1:-2] == h(pdu), binascii.hexlify(adu)
        assert crc.crc_ok(adu)


def test_full_request_adu_with_published_crc():
    assert host.read_holding_registers(0x11, 0x6B, 3) == h("11 03 00 6B 00 03 76 87")
    assert host.read_holding_registers(1, 0, 10) == h("01 03 00 00 00 0A C5 CD")
    assert host.write_register(1, 1, 3) == h("01 06 00 01 00 03 98 0B")


def test_request_limits():
    assert len(host.read_holding_registers(1, 0, 125)) == 8
    assert len(host.read_coils(1, 0, 2000)) == 8
    assert len(host.write_registers(1, 0, [0] * 123)) == 9 + 246
    assert len(host.write_coils(1, 0, [1] * 1968)) == 9 + 246
    assert host.read_holding_registers(1, 65535, 1)[2:4] == h("FF FF")
    for bad in (
        lambda: host.read_holding_registers(1, 0, 126),
        lambda: host.read_holding_registers(1, 0, 0),
        lambda: host.read_input_registers(1, 65535, 2),
        lambda: host.read_coils(1, 0, 2001),
        lambda: host.read_holding_registers(0, 0, 1),  # a read cannot be broadcast
        lambda: host.read_holding_registers(256, 0, 1),
        lambda: rtu.read_request(1, 7, 0, 1),
        lambda: host.write_registers(1, 0, [0] * 124),
        lambda: host.write_registers(1, 0, [70000]),
        lambda: host.write_registers(1, 0, b"\x00"),
        lambda: host.write_coils(1, 0, [1] * 1969),
        lambda: host.write_register(1, 0, -1),
        lambda: host.write_register(1, 65536, 0),
    ):
        with raises(ValueError):
            bad()
    # broadcast writes are allowed and expect no response
    assert not rtu.response_expected(host.write_register(0, 1, 1))
    assert rtu.response_expected(host.write_register(1, 1, 1))


# ---- responses: spec PDU examples -----------------------------------------------------------------

SPEC_PAIRS = [
    # (request, response PDU from the specification, parsed value)
    (
        host.read_coils(0x11, 19, 19),
        "01 03 CD 6B 05",
        [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1],
    ),
    (
        host.read_discrete_inputs(0x11, 196, 22),
        "02 03 AC DB 35",
        [0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1],
    ),
    (host.read_holding_registers(0x11, 107, 3), "03 06 02 2B 00 00 00 64", [555, 0, 100]),
    (host.read_input_registers(0x11, 8, 1), "04 02 00 0A", [10]),
    (host.write_coil(0x11, 172, True), "05 00 AC FF 00", True),
    (host.write_coil(0x11, 172, False), "05 00 AC 00 00", False),
    (host.write_register(0x11, 1, 3), "06 00 01 00 03", 3),
    (host.write_coils(0x11, 19, [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]), "0F 00 13 00 0A", 10),
    (host.write_registers(0x11, 1, [10, 258]), "10 00 01 00 02", 2),
]


def response(pdu, slave_id=0x11):
    return crc.with_crc(bytes((slave_id,)) + h(pdu))


def test_parse_spec_responses():
    for request, pdu, want in SPEC_PAIRS:
        got = host.parse_response(request, response(pdu))
        if isinstance(want, list) and request[1] <= 2:
            want = [bool(b) for b in want]
        assert got == want, (pdu, got)
        assert rtu.expected_response_length(request, response(pdu)) == len(response(pdu))


def test_exception_response():
    request = host.read_holding_registers(0x0A, 0x0100, 2)
    with raises(errors.ModbusException) as info:
        host.check_response(request, response("83 02", 0x0A))
    assert info.value.function == 3 and info.value.code == 2
    assert info.value.reason == "exception"
    assert "illegal data address" in str(info.value)
    assert rtu.expected_response_length(request, h("0A 83")) == 5
    # the specification's own example: read coils (function 1) answered with 81 02
    with raises(errors.ModbusException) as info:
        host.check_response(host.read_coils(1, 0, 8), response("81 02", 1))
    assert info.value.function == 1 and info.value.code == 2


def corrupt(data, index, value):
    b = bytearray(data)
    b[index] = value
    return bytes(b)


def test_each_failure_has_its_own_error():
    req = host.read_holding_registers(0x11, 107, 3)
    good = response("03 06 02 2B 00 00 00 64")
    cases = [
        (corrupt(good, 4, 0x2C), errors.CRCError, "crc"),
        (response("03 06 02 2B 00 00 00 64", 0x12), errors.WrongAddressError, "wrong-address"),
        (response("04 06 02 2B 00 00 00 64"), errors.WrongFunctionError, "wrong-function"),
        (response("03 04 02 2B 00 00"), errors.ByteCountError, "byte-count"),
        (response("03 06 02 2B 00 00"), errors.FrameError, "length"),
        (good[:4], errors.FrameError, "length"),
        (response("83 02 00"), errors.FrameError, "length"),
    ]
    for resp, kind, reason in cases:
        with raises(kind) as info:
            host.check_response(req, resp)
        assert info.value.reason == reason
        assert isinstance(info.value, errors.ModbusError)
    # write echoes: address, value and quantity must come back unchanged
    wreq = host.write_register(0x11, 1, 3)
    for pdu in ("06 00 02 00 03", "06 00 01 00 04"):
        with raises(errors.WrongEchoError):
            host.check_response(wreq, response(pdu))
    mreq = host.write_registers(0x11, 1, [10, 258])
    for pdu in ("10 00 01 00 03", "10 00 02 00 02"):
        with raises(errors.WrongEchoError) as info:
            host.check_response(mreq, response(pdu))
        assert info.value.reason == "wrong-echo"
    creq = host.write_coil(0x11, 172, True)
    with raises(errors.WrongEchoError):
        host.check_response(creq, response("05 00 AC 00 00"))


def test_reasons_are_distinct():
    kinds = (
        errors.FrameError,
        errors.CRCError,
        errors.WrongAddressError,
        errors.WrongFunctionError,
        errors.ByteCountError,
        errors.WrongEchoError,
        errors.ModbusException,
    )
    reasons = [k.reason for k in kinds]
    assert len(set(reasons)) == len(reasons)


def test_check_response_accepts_all_buffer_types():
    req = host.read_holding_registers(0x11, 107, 3)
    good = response("03 06 02 2B 00 00 00 64")
    for kind in (bytes, bytearray, memoryview):
        host.check_response(req, kind(good))
    padded = bytearray(good + b"\x00" * 20)
    host.check_response(req, padded, len(good))


# ---- chunked responses ----------------------------------------------------------------------------


def feed_chunks(framer, request, data, cuts):
    framer.start(request)
    state = rtu.NEED_MORE
    pos = 0
    states = []
    for cut in list(cuts) + [len(data)]:
        state = framer.feed(data[pos:cut])
        states.append(state)
        pos = cut
        if state != rtu.NEED_MORE:
            break
    return state, states


def test_framer_every_split_point_valid_frames():
    framer = rtu.ResponseFramer()
    for request, pdu, _ in SPEC_PAIRS:
        data = response(pdu)
        for cut in range(1, len(data)):
            state, states = feed_chunks(framer, request, data, [cut])
            assert states == [rtu.NEED_MORE, rtu.COMPLETE], (pdu, cut, states)
            assert bytes(framer.frame) == data
            assert framer.trailing == 0
        # byte by byte, as a slow UART delivers it
        state, states = feed_chunks(framer, request, data, range(1, len(data)))
        assert state == rtu.COMPLETE and states[:-1] == [rtu.NEED_MORE] * (len(data) - 1)
        # three chunks, every pair of cut points
        for a in range(1, len(data) - 1):
            for b in range(a + 1, len(data)):
                state, _ = feed_chunks(framer, request, memoryview(data), [a, b])
                assert state == rtu.COMPLETE
                assert bytes(framer.frame) == data


def test_framer_results_match_check_response_at_every_split():
    framer = rtu.ResponseFramer()
    req = host.read_holding_registers(0x11, 107, 3)
    good = response("03 06 02 2B 00 00 00 64")
    bad_frames = [
        (corrupt(good, 5, 0x99), "crc"),
        (response("03 06 02 2B 00 00 00 64", 0x12), "wrong-address"),
        (response("04 06 02 2B 00 00 00 64"), "wrong-function"),
        (response("03 08 02 2B 00 00 00 64 00 00"), "byte-count"),
        (response("83 04"), "exception"),
    ]
    for data, reason in bad_frames:
        with raises(errors.ModbusError) as info:
            host.check_response(req, data)
        assert info.value.reason == reason
        for cut in range(len(data) + 1):
            state, _ = feed_chunks(framer, req, data, [cut] if 0 < cut < len(data) else [])
            assert state == rtu.ERROR, (reason, cut)
            assert framer.error.reason == reason, (reason, cut, framer.error.reason)
    # exception responses keep their (valid) frame and the code
    feed_chunks(framer, req, response("83 04"), [2])
    assert framer.error.code == 4 and framer.error.function == 3
    assert bytes(framer.frame) == response("83 04")


def test_framer_reports_header_errors_before_the_frame_ends():
    framer = rtu.ResponseFramer()
    req = host.read_holding_registers(0x11, 107, 3)
    framer.start(req)
    assert framer.feed(b"\x12") == rtu.ERROR and framer.error.reason == "wrong-address"
    framer.start(req)
    assert framer.feed(b"\x11") == rtu.NEED_MORE
    assert framer.feed(b"\x04") == rtu.ERROR and framer.error.reason == "wrong-function"
    framer.start(req)
    assert framer.feed(b"\x11\x03\x04") == rtu.ERROR and framer.error.reason == "byte-count"


def test_framer_trailing_bytes_and_reuse():
    framer = rtu.ResponseFramer()
    req = host.read_input_registers(0x11, 8, 1)
    data = response("04 02 00 0A")
    framer.start(req)
    assert framer.feed(data + b"\x00\x01") == rtu.COMPLETE
    assert framer.trailing == 2
    assert framer.feed(b"\x02") == rtu.COMPLETE and framer.trailing == 3
    assert host.parse_response(req, framer.frame) == [10]
    # the same framer serves the next request from scratch
    req2 = host.write_register(0x11, 1, 3)
    framer.start(req2)
    assert framer.error is None and framer.frame is None
    assert framer.feed(response("06 00 01 00 03")) == rtu.COMPLETE


def test_framer_feed_count_from_a_preallocated_buffer():
    framer = rtu.ResponseFramer()
    req = host.read_input_registers(0x11, 8, 1)
    data = response("04 02 00 0A")
    rx = bytearray(32)
    rx[0:4] = data[0:4]
    framer.start(req)
    assert framer.feed(rx, 4) == rtu.NEED_MORE
    rx[0:3] = data[4:7]
    assert framer.feed(rx, 3) == rtu.COMPLETE
    assert bytes(framer.frame) == data


def test_framer_hunting_skips_leading_noise():
    req = host.read_input_registers(0x11, 8, 1)
    data = response("04 02 00 0A")
    strict = rtu.ResponseFramer()
    strict.start(req)
    assert strict.feed(b"\x00" + data) == rtu.ERROR
    framer = rtu.ResponseFramer(hunt=True)
    for noise in (b"\x00", b"\xff\x00", b""):
        framer.start(req)
        assert framer.feed(noise) == rtu.NEED_MORE
        assert framer.feed(data) == rtu.COMPLETE
        assert framer.skipped == len(noise)
        assert bytes(framer.frame) == data


def test_framer_rejects_broadcast():
    with raises(ValueError):
        rtu.ResponseFramer().start(host.write_register(0, 1, 1))


def test_expected_response_length_needs_two_bytes():
    req = host.read_holding_registers(1, 0, 10)
    assert rtu.expected_response_length(req, b"") == 0
    assert rtu.expected_response_length(req, b"\x01") == 0
    assert rtu.expected_response_length(req, b"\x01\x03") == 25
    assert rtu.expected_response_length(host.read_coils(1, 0, 9), b"\x01\x01") == 7
    assert rtu.expected_response_length(host.write_coils(1, 0, [1] * 9), b"\x01\x0f") == 8
    with raises(errors.WrongFunctionError):
        rtu.expected_response_length(req, b"\x01\x04")


# ---- slave side ---------------------------------------------------------------------------------


def make_store():
    return slave.RegisterStore(
        holding={107: 555, 108: 0, 109: 100, 1: 0, 2: 0},
        inputs={8: 10},
        coils={a: False for a in range(19, 19 + 19)},
        discrete={
            196 + i: b
            for i, b in enumerate([0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1])
        },
    )


def test_slave_answers_spec_reads():
    store = make_store()
    assert slave.handle_request(store, 0x11, host.read_holding_registers(0x11, 107, 3)) == response(
        "03 06 02 2B 00 00 00 64"
    )
    assert slave.handle_request(store, 0x11, host.read_input_registers(0x11, 8, 1)) == response("04 02 00 0A")
    assert slave.handle_request(store, 0x11, host.read_discrete_inputs(0x11, 196, 22)) == response(
        "02 03 AC DB 35"
    )


def test_slave_writes_then_reads_back():
    store = make_store()
    bits = [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]
    req = host.write_coils(0x11, 19, bits)
    assert slave.handle_request(store, 0x11, req) == response("0F 00 13 00 0A")
    assert slave.handle_request(store, 0x11, host.read_coils(0x11, 19, 10)) == response("01 02 CD 01")
    req = host.write_registers(0x11, 1, [10, 258])
    assert slave.handle_request(store, 0x11, req) == response("10 00 01 00 02")
    assert store.tables["holding"][1] == 10 and store.tables["holding"][2] == 258
    req = host.write_register(0x11, 1, 3)
    assert slave.handle_request(store, 0x11, req) == req  # echo
    req = host.write_coil(0x11, 20, True)
    assert slave.handle_request(store, 0x11, req) == req
    assert store.tables["coil"][20] is True


def test_slave_exceptions():
    store = make_store()
    cases = [
        (host.read_holding_registers(0x11, 107, 4), 3, 2),  # 110 is not defined
        (host.read_input_registers(0x11, 9, 1), 4, 2),
        (host.write_register(0x11, 5, 1), 6, 2),
        (crc.with_crc(h("11 03 00 6B 00 7E")), 3, 3),  # 126 registers
        (crc.with_crc(h("11 05 00 14 12 34")), 5, 3),  # coil value neither FF00 nor 0000
        (crc.with_crc(h("11 10 00 01 00 02 03 00 0A 01")), 16, 3),  # byte count disagrees with quantity
        (crc.with_crc(h("11 2B 0E 01 00")), 0x2B, 1),  # function not served
    ]
    for request, fc, code in cases:
        resp = slave.handle_request(store, 0x11, request)
        assert resp == crc.with_crc(bytes((0x11, fc | 0x80, code))), (binascii.hexlify(request), resp)
    assert store.tables["coil"][20] is False  # nothing was written by the failing requests


def test_slave_stays_silent():
    store = make_store()
    req = host.read_holding_registers(0x11, 107, 3)
    assert slave.handle_request(store, 0x12, req) is None  # someone else's request
    assert slave.handle_request(store, 0x11, corrupt(req, 3, 0x6C)) is None  # CRC error
    assert slave.handle_request(store, 0x11, req[:7]) is None
    broadcast = host.write_register(0, 1, 77)
    assert slave.handle_request(store, 0x11, broadcast) is None
    assert store.tables["holding"][1] == 77  # broadcast writes are applied


def test_slave_store_can_inject_exceptions():
    class Busy(slave.RegisterStore):
        def read(self, table, address, count):
            raise errors.ModbusException(3, errors.SERVER_DEVICE_BUSY)

    resp = slave.handle_request(Busy(), 1, host.read_holding_registers(1, 0, 1))
    with raises(errors.ModbusException) as info:
        host.check_response(host.read_holding_registers(1, 0, 1), resp)
    assert info.value.code == 6


def test_request_framing_for_slaves():
    req = host.write_registers(0x11, 1, [10, 258])
    for n in range(len(req)):
        want = 0 if n < 2 or n < 7 else len(req)
        assert slave.expected_request_length(req, n) == want, n
    assert slave.expected_request_length(host.read_coils(1, 0, 1), 2) == 8
    assert slave.parse_request(req) == (0x11, 16, 1, 2)
    with raises(errors.CRCError):
        slave.parse_request(corrupt(req, 2, 9))
    with raises(errors.FrameError):
        slave.expected_request_length(h("01 2B"))
