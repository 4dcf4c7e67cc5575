// MicroPython board configuration for the emlog logger board esp32s3-psram-8mb (boards/esp32s3-psram-8mb.json).
// Built out of tree from ports/esp32: make BOARD_DIR=<emlog>/boards/micropython/esp32s3-psram-8mb (boards/micropython/README.md).

#define MICROPY_HW_BOARD_NAME               "emlog esp32s3-psram-8mb"
#define MICROPY_HW_MCU_NAME                 "ESP32S3"

// The REPL and flashing go through UART0 and the module's USB-serial bridge (UART0 is reserved for them in
// boards/esp32s3-psram-8mb.json), not through the S3's native USB.
#define MICROPY_HW_ENABLE_UART_REPL         (1)

// ROMFS: vfs.rom_ioctl() memory-maps the data partition labelled "romfs" (partitions.csv) and MicroPython
// mounts it at /rom at start-up, so the app's .mpy files run from flash instead of being loaded into the heap.
#define MICROPY_VFS_ROM                     (1)
