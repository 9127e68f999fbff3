"""firmware/dlms/obis.py: OBIS text forms (IEC 62056-6-1), the ESME's logical names."""

from firmware.dlms import obis as O


def _value_error(text):
    try:
        O.obis(text)
    except ValueError:
        return
    raise AssertionError("accepted %r" % (text,))


def test_dotted_form():
    assert O.obis("1.0.1.8.0.255") == b"\x01\x00\x01\x08\x00\xff"
    assert O.obis("0.0.96.3.10.255") == b"\x00\x00\x60\x03\x0a\xff"


def test_iec_forms():
    assert O.obis("1-0:1.8.0*255") == b"\x01\x00\x01\x08\x00\xff"
    assert O.obis("1-0:1.8.0") == b"\x01\x00\x01\x08\x00\xff"
    assert O.obis("0-0:96.3.10*255") == O.DISCONNECT_CONTROL
    assert O.obis("1-0:1.8.2*0") == b"\x01\x00\x01\x08\x02\x00"


def test_text_round_trip():
    for text in ("0.0.1.0.0.255", "1.0.99.1.0.255", "255.255.255.255.255.255", "0.0.0.0.0.0"):
        assert O.obis_text(O.obis(text)) == text
    assert O.obis_text(bytearray(b"\x01\x00\x20\x07\x00\xff")) == "1.0.32.7.0.255"


def test_bad_codes_rejected():
    for text in ("", "1.0.1.8.0", "1.0.1.8.0.256", "1.0.1.8.x.255", "1.0.1.8.0.255.1",
                 "1.0.1..0.255", "1-0:1.8", "1.0.1.8.0.-1", "1.0.1.8.0.0255"):
        _value_error(text)
    _value_error(b"1.0.1.8.0.255")
    for bad in (b"\x01\x02\x03\x04\x05", b"\x00" * 7):
        try:
            O.obis_text(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (bad,))


def test_logical_names_match_their_codes():
    expected = (
        (O.CLOCK, "0.0.1.0.0.255"),
        (O.CURRENT_ASSOCIATION, "0.0.40.0.0.255"),
        (O.SAP_ASSIGNMENT, "0.0.41.0.0.255"),
        (O.LOGICAL_DEVICE_NAME, "0.0.42.0.0.255"),
        (O.IMPORT_ACTIVE_ENERGY, "1.0.1.8.0.255"),
        (O.IMPORT_ACTIVE_POWER, "1.0.1.7.0.255"),
        (O.VOLTAGE_L1, "1.0.32.7.0.255"),
        (O.DISCONNECT_CONTROL, "0.0.96.3.10.255"),
        (O.SUPPLY_SCRIPT_TABLE, "0.0.10.0.106.255"),
        (O.EVENT_LOG, "0.0.99.98.0.255"),
        (O.HH_PROFILE, "1.0.99.1.0.255"),
        (O.DAILY_READ_LOG, "1.0.98.1.0.255"),
    )
    for name, text in expected:
        assert name == O.obis(text), text
    for rate in range(4):
        assert O.IMPORT_ACTIVE_ENERGY_TOU[rate] == O.obis("1.0.1.8.%d.255" % (rate + 1))


def test_names_table_is_unique_and_complete():
    assert len(O.NAMES) == 16
    seen = []
    for code in O.NAMES:
        assert len(code) == 6
        assert code not in seen
        seen.append(code)
    assert O.NAMES[O.CLOCK] == "clock"
