"""Modbus RTU master core shared by the firmware and the host tools.

Import the part you need (nothing is imported here, to keep the device's import cost low):

    protocols.modbus.crc     CRC-16/MODBUS
    protocols.modbus.errors  ModbusError and its subclasses (each with a `reason`), exception codes
    protocols.modbus.rtu     request ADUs, response validation, ResponseFramer, slave-side framing
    protocols.modbus.values  u16..f64 in ABCD/DCBA/BADC/CDAB, bits, masks, scaling
    protocols.modbus.plan    merge a device's points into the fewest reads; decode reads in place
    protocols.modbus.slave   RegisterStore and handle_request() for emulators and tests
"""
