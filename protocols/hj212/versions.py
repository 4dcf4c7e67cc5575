"""The Flag field: A (bit 0), D (bit 1) and the standard version in bits 7..2.

Every version-specific number lives here. HJ/T 212-2005 = 0 and HJ 212-2017 = 1 are stated in the 2017
text (Table 3). HJ 212-2025 = 2 is UNVERIFIED: it comes from one open-source implementation
(caoyiliang/HJ212, `Version.HJT212_2025 = 8`), not from the 2025 text. Change it here only.
"""

FLAG_A = 0x01  # 命令需要应答 (ack wanted)
FLAG_D = 0x02  # 数据包中包含包号和总包数 (split packet: PNUM/PNO present)

# version year -> value of the V5..V0 bits
VERSION_BITS = {2005: 0, 2017: 1, 2025: 2}  # 2025: UNVERIFIED (see module docstring)
DEFAULT_VERSION = 2017


def make_flag(version=DEFAULT_VERSION, ack=False, split=False):
    """Flag value for a version year: make_flag(2017, ack=True) == 5."""
    if version not in VERSION_BITS:
        raise ValueError("unknown HJ 212 version %r" % (version,))
    return (VERSION_BITS[version] << 2) | (FLAG_A if ack else 0) | (FLAG_D if split else 0)


def flag_version(flag):
    """Version year of a Flag value. A missing Flag (None) is a 2005-style packet; unknown bits give None."""
    if flag is None:
        return 2005
    bits = flag >> 2
    for year in VERSION_BITS:
        if VERSION_BITS[year] == bits:
            return year
    return None
