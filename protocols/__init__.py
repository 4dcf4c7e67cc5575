"""Wire protocols shared by the device (MicroPython) and the host (CPython): HJ 212 and Modbus RTU."""
