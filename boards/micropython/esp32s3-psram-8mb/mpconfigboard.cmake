# emlog logger board esp32s3-psram-8mb: ESP-IDF settings for MicroPython's esp32 port (v1.28).
set(IDF_TARGET esp32s3)

# sdkconfig fragments cannot expand variables, so the partition table setting, which needs this directory's
# absolute path, is written to a fragment in the build directory. It comes last so that it wins over
# sdkconfig.base, which names MicroPython's default partitions-4MiBplus.csv.
set(EMLOG_PARTITIONS_SDKCONFIG ${CMAKE_BINARY_DIR}/sdkconfig.emlog_partitions)
file(WRITE ${EMLOG_PARTITIONS_SDKCONFIG}
    "CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions.csv\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    boards/sdkconfig.ble
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${EMLOG_PARTITIONS_SDKCONFIG}
)
