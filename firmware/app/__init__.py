"""emlog firmware application: acquisition (clock, bus, reader, channels, stats, acquisition) and
uplink side (config, uplink, queue, console, log, main). See firmware/README.md."""
