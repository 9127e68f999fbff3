# GBCS code tables held against RTDS 4.5.0 (tests/vectors/gbcs/rtds-4.5.0): every message
# there has a known code, its protection agrees with the critical flag, its originator's
# role may send it, and the alert codes named in the file names are in the alert table.
# Plain asserts; runs under MicroPython too (os.listdir on the unix port).

from binascii import unhexlify

from firmware.gbcs import codes, envelope

try:
    import os
except ImportError:           # a port without os cannot walk the vectors
    os = None

# Remote parties of the RTDS keystore and their roles (certificate subject OU=<role>)
RTDS_ROLES = {
    "90b3d51f30000001": codes.ROLE_RECOVERY,
    "90b3d51f30000002": codes.ROLE_ACB,
    "90b3d51f30000004": codes.ROLE_TRANSITIONAL_COS,
    "90b3d51f30000007": codes.ROLE_WAN_PROVIDER,
    "90b3d51f30010000": codes.ROLE_SUPPLIER,
    "90b3d51f30020000": codes.ROLE_NETWORK_OPERATOR,
    "90b3d51f30030000": codes.ROLE_SUPPLIER,
}
# Known oddities of the data set, not of the tables: RTDS 6.21 sends the network-operator
# handover from the ACB's EUI; PCS02 comes from the PPMID over the HAN.
RTDS_ROLE_EXCEPTIONS = ("CS02bNOByNOHandover_6.21_SUCCESS_COMMAND_GBCS.HEX",
                        "PCS02_NA_SUCCESS_COMMAND_GBCS.HEX")

REQUIRED = ("ECS17b", "ECS22b", "ECS21a", "ECS70", "ECS70Commission", "ECS42", "ECS43",
            "ECS44", "ECS45", "ECS04b", "CS01a", "CS01b", "GCS13a", "GCS17", "GCS32", "GCS39",
            "GCS28", "CCS01", "CCS02", "CS02bSupplierBySupplier", "CS02bSupplierByTransCoS",
            "CS02bACBByACB", "CS03A1", "CS03B", "CS03C")


def _vectors_dir():
    path = globals().get("__file__") or "tests/firmware/test_gbcs_codes.py"
    cut = path.rfind("/")
    here = path[:cut] if cut >= 0 else "."
    return here + "/../vectors/gbcs/rtds-4.5.0"


class _Summary:
    """What the tests need of one RTDS message: small, so all of them fit a board's heap."""

    def __init__(self, message):
        self.message_code = message.message_code
        self.cra_flag = message.cra_flag
        self.signed = message.signature is not None
        self.signature_field = message.signature_field
        self.mac_protected = message.mac_protected
        self.originator = message.originator


def _messages():
    """Each RTDS message in turn, parsed and summarised one file at a time: nothing is
    kept, so the walk fits the heap of the MicroPython runner."""
    root = _vectors_dir()
    for folder in sorted(os.listdir(root)):
        for name in sorted(os.listdir(root + "/" + folder)):
            with open(root + "/" + folder + "/" + name) as f:
                text = f.read().strip()
            yield name, _Summary(envelope.parse(unhexlify(text)))


def _kind(name):
    return name.split("_")[-2]


def test_use_case_table_shape():
    for name in REQUIRED:
        assert name in codes.USE_CASES, name
    for name in codes.USE_CASES:
        entry = codes.USE_CASES[name]
        assert len(entry) == 4, name
        code, critical, device, kind = entry
        assert 0 < code < 0x1000, name
        assert critical in (True, False), name
        assert device in (codes.ESME, codes.GSME, codes.CHF, codes.GPF, codes.ANY_DEVICE), name
        assert kind in (codes.DLMS, codes.GBZ, codes.ASN1), name
        assert codes.use_case(name) == entry


def test_names_sharing_a_code_agree_on_everything_but_the_name():
    by_code = {}
    for name in codes.USE_CASES:
        code = codes.USE_CASES[name][0]
        if code in by_code:
            assert codes.USE_CASES[by_code[code]][1:] == codes.USE_CASES[name][1:], name
        else:
            by_code[code] = name
    assert codes.USE_CASES["ECS70Commission"][0] == codes.USE_CASES["ECS70"][0]


def test_cs02b_variants_cover_every_replacement_mode():
    assert len(codes.CS02B_CODES) == 10
    seen = []
    for name in codes.USE_CASES:
        code, critical, _, kind = codes.USE_CASES[name]
        if code in codes.CS02B_CODES:
            assert critical and kind == codes.ASN1, name
            if code not in seen:
                seen.append(code)
    assert sorted(seen) == list(codes.CS02B_CODES)
    assert codes.CS02B_MODE[codes.CS02B_SUPPLIER_BY_TRANSCOS] == 7
    assert codes.CS02B_MODE[codes.CS02B_SUPPLIER_BY_SUPPLIER] == 2


def test_every_commandable_use_case_names_who_may_send_it():
    for name in codes.USE_CASES:
        code = codes.USE_CASES[name][0]
        if code == codes.PCS02:
            assert codes.sender_roles(code) == ()
            continue
        roles = codes.sender_roles(code)
        assert roles, name
        for role in roles:
            assert role in codes.ROLE_NAMES, name


def test_supply_and_credentials_commands_are_for_their_owner_only():
    for code in (codes.ECS42, codes.ECS43, codes.ECS44, codes.ECS04B, codes.CS01A,
                 codes.CS02B_SUPPLIER_BY_SUPPLIER):
        assert codes.sender_roles(code) == (codes.ROLE_SUPPLIER,)
    assert codes.sender_roles(codes.CS02B_SUPPLIER_BY_TRANSCOS) == (codes.ROLE_TRANSITIONAL_COS,)
    assert codes.sender_roles(codes.CS02B_ACB_BY_ACB) == (codes.ROLE_ACB,)
    assert codes.sender_roles(0x7FFF) == ()


def test_lookups_by_code():
    assert codes.name_of(codes.ECS17B) == "ECS17b"
    assert codes.name_of(0x7FFF) is None
    assert codes.is_critical(codes.ECS42) is True
    assert codes.is_critical(codes.ECS17B) is False
    assert codes.is_critical(codes.GENERIC_CRITICAL_ALERT) is True
    assert codes.is_critical(codes.GENERIC_NON_CRITICAL_ALERT) is False
    assert codes.is_critical(0x7FFF) is None


def test_alert_criticality_by_code_range():
    assert codes.alert_is_critical(codes.ALERT_SOURCE_NOT_AUTHORISED)
    assert codes.alert_is_critical(codes.ALERT_BILLING_DATA_LOG_UPDATED)
    assert not codes.alert_is_critical(codes.ALERT_SMART_METER_INTEGRITY_WARNING)
    assert codes.alert_message_code(0x8F66) == codes.GENERIC_CRITICAL_ALERT
    assert codes.alert_message_code(0x81A0) == codes.GENERIC_NON_CRITICAL_ALERT
    for code in (codes.ALERT_SOURCE_NOT_AUTHORISED, codes.ALERT_FUTURE_DATED_ACTIONED,
                 codes.ALERT_BILLING_DATA_LOG_UPDATED,
                 codes.ALERT_TRUSTED_SOURCE_AUTHENTICATION_FAILURE,
                 codes.ALERT_FAILED_AUTHENTICATION_OTHER, codes.ALERT_INTEGRITY_CHECK_FAILED):
        assert code in codes.ALERT_NAMES


def test_every_rtds_message_code_is_known():
    count = 0
    for name, message in _messages():
        assert codes.is_critical(message.message_code) is not None, name
        count += 1
    assert count > 300


def test_rtds_protection_agrees_with_the_critical_flag():
    checked = 0
    for name, message in _messages():
        critical = codes.is_critical(message.message_code)
        signed = message.signed
        kind = _kind(name)
        if kind == "PRECOMMAND":
            assert critical and not message.signature_field, name
        elif message.cra_flag == envelope.CRA_COMMAND:
            expect = critical and message.message_code not in codes.MAC_AUTHORISED_CRITICAL
            assert signed == expect, name
            assert message.mac_protected, name            # the ACB MACs every command
        else:                                             # responses and alerts
            assert signed == critical, name
            assert message.mac_protected == (not critical), name
        checked += 1
    assert checked > 300


def test_rtds_originators_may_send_their_commands():
    commands = 0
    for name, message in _messages():
        if message.cra_flag != envelope.CRA_COMMAND or name in RTDS_ROLE_EXCEPTIONS:
            continue
        role = RTDS_ROLES.get("".join("%02x" % b for b in message.originator))
        assert role in codes.sender_roles(message.message_code), name
        commands += 1
    assert commands > 100


def test_rtds_alert_codes_are_in_the_table():
    alerts = 0
    for name, message in _messages():
        if message.cra_flag != envelope.CRA_ALERT:
            continue
        parts = name.split("_")
        for part in parts:
            if len(part) == 4 and part[:2] in ("8F", "81", "80"):
                code = int(part, 16)
                assert code in codes.ALERT_NAMES, name
                if message.message_code in (codes.GENERIC_CRITICAL_ALERT,
                                            codes.GENERIC_NON_CRITICAL_ALERT):
                    assert codes.alert_message_code(code) == message.message_code, name
                alerts += 1
    assert alerts >= 10
