"""Modbus RTU master core shared by the firmware and the host tools.

Import the part you need (nothing is imported here, to keep the device's import cost low):

    protocols.modbus.crc     CRC-16/MODBUS
    protocols.modbus.errors  ModbusError and its subclasses (each with a `reason`), exception codes
    protocols.modbus.rtu     what the device runs: read requests, response validation, ResponseFramer
    protocols.modbus.host    host side of rtu: write requests, read shortcuts, check/parse_response
    protocols.modbus.decode  what the device decodes with: spec(), decode_spec(), bits, masks
    protocols.modbus.values  decode plus u16..f64 encoding in ABCD/DCBA/BADC/CDAB, scaling (host)
    protocols.modbus.plan    merge a device's points into the fewest reads; decode reads in place
    protocols.modbus.slave   RegisterStore, handle_request() and slave-side framing (emulators, tests)
"""
