"""OBIS codes (IEC 62056-6-1): six value groups A-B:C.D.E*F as a 6-byte logical name.

One source of truth for the logical names the device core uses (ARCHITECTURE.md
principle 8): import them from here, never spell the bytes again.
"""


def obis(text):
    """``"1.0.1.8.0.255"``, ``"1-0:1.8.0*255"`` or ``"1-0:1.8.0"`` (F = 255) -> bytes(6)."""
    if not isinstance(text, str):
        raise ValueError("OBIS code must be text: %r" % (text,))
    iec_form = ":" in text
    groups = text.replace("-", ".").replace(":", ".").replace("*", ".").split(".")
    if iec_form and len(groups) == 5 and "*" not in text:
        groups.append("255")
    if len(groups) != 6:
        raise ValueError("OBIS code needs six value groups: %r" % text)
    out = bytearray(6)
    for i in range(6):
        group = groups[i]
        if not group or not group.isdigit() or len(group) > 3:
            raise ValueError("bad OBIS value group %r in %r" % (group, text))
        value = int(group)
        if value > 255:
            raise ValueError("OBIS value group %d > 255 in %r" % (value, text))
        out[i] = value
    return bytes(out)


def obis_text(logical_name):
    """bytes(6) -> ``"1.0.1.8.0.255"``."""
    if len(logical_name) != 6:
        raise ValueError("logical name must be 6 bytes, got %d" % len(logical_name))
    b = logical_name
    return "%d.%d.%d.%d.%d.%d" % (b[0], b[1], b[2], b[3], b[4], b[5])


# Logical names of the ESME (GBCS ESME object list; IEC 62056-6-1 / Blue Book 7.x).
CLOCK = b"\x00\x00\x01\x00\x00\xff"                    # 0.0.1.0.0.255, class 8
CURRENT_ASSOCIATION = b"\x00\x00\x28\x00\x00\xff"      # 0.0.40.0.0.255, class 15
SAP_ASSIGNMENT = b"\x00\x00\x29\x00\x00\xff"           # 0.0.41.0.0.255, class 17
LOGICAL_DEVICE_NAME = b"\x00\x00\x2a\x00\x00\xff"      # 0.0.42.0.0.255, class 1
IMPORT_ACTIVE_ENERGY = b"\x01\x00\x01\x08\x00\xff"     # 1.0.1.8.0.255, class 3
IMPORT_ACTIVE_ENERGY_TOU = (                           # 1.0.1.8.1..4.255, class 3
    b"\x01\x00\x01\x08\x01\xff",
    b"\x01\x00\x01\x08\x02\xff",
    b"\x01\x00\x01\x08\x03\xff",
    b"\x01\x00\x01\x08\x04\xff",
)
IMPORT_ACTIVE_POWER = b"\x01\x00\x01\x07\x00\xff"      # 1.0.1.7.0.255, class 3
VOLTAGE_L1 = b"\x01\x00\x20\x07\x00\xff"               # 1.0.32.7.0.255, class 3
DISCONNECT_CONTROL = b"\x00\x00\x60\x03\x0a\xff"       # 0.0.96.3.10.255, class 70
SUPPLY_SCRIPT_TABLE = b"\x00\x00\x0a\x00\x6a\xff"      # 0.0.10.0.106.255, class 9
EVENT_LOG = b"\x00\x00\x63\x62\x00\xff"                # 0.0.99.98.0.255, class 7
# UNCONFIRMED against the GBCS ESME object list (not in DOMAIN.md): the HH profile
# uses the IEC 62056-6-1 "load profile 1" code and the daily read log the "data of
# billing period 1" profile code. Change here only; everything imports these names.
HH_PROFILE = b"\x01\x00\x63\x01\x00\xff"               # 1.0.99.1.0.255, class 7
DAILY_READ_LOG = b"\x01\x00\x62\x01\x00\xff"           # 1.0.98.1.0.255, class 7

NAMES = {
    CLOCK: "clock",
    CURRENT_ASSOCIATION: "current association",
    SAP_ASSIGNMENT: "SAP assignment",
    LOGICAL_DEVICE_NAME: "logical device name",
    IMPORT_ACTIVE_ENERGY: "import active energy",
    IMPORT_ACTIVE_ENERGY_TOU[0]: "import active energy, rate 1",
    IMPORT_ACTIVE_ENERGY_TOU[1]: "import active energy, rate 2",
    IMPORT_ACTIVE_ENERGY_TOU[2]: "import active energy, rate 3",
    IMPORT_ACTIVE_ENERGY_TOU[3]: "import active energy, rate 4",
    IMPORT_ACTIVE_POWER: "instantaneous active import power",
    VOLTAGE_L1: "voltage L1",
    DISCONNECT_CONTROL: "disconnect control",
    SUPPLY_SCRIPT_TABLE: "supply script table",
    EVENT_LOG: "event log",
    HH_PROFILE: "half-hourly profile",
    DAILY_READ_LOG: "daily read log",
}
