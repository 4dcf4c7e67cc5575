// MicroPython board configuration for the emlog logger board esp32-generic-4mb (boards/esp32-generic-4mb.json).
// Built out of tree from ports/esp32: make BOARD_DIR=<emlog>/boards/micropython/esp32-generic-4mb (boards/micropython/README.md).

#define MICROPY_HW_BOARD_NAME               "emlog esp32-generic-4mb"
#define MICROPY_HW_MCU_NAME                 "ESP32"

// ROMFS: vfs.rom_ioctl() memory-maps the data partition labelled "romfs" (partitions.csv) and MicroPython
// mounts it at /rom at start-up, so the app's .mpy files run from flash instead of being loaded into the heap.
#define MICROPY_VFS_ROM                     (1)
