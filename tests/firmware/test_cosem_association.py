"""Logical device access policy, Association LN (15) v1 and SAP assignment (17)."""

import json

from firmware.cosem.association import AssociationLN, SapAssignment, object_list_element
from firmware.cosem.base import Context, DataAccessError, ActionError
from firmware.cosem.clock import Clock
from firmware.cosem.disconnect import DisconnectControl
from firmware.cosem.logical_device import (LogicalDevice, AccessRights, read_only, full_access,
                                           PUBLIC_CLIENT, MANAGEMENT_CLIENT, AUTH_LOWEST,
                                           AUTH_LOW)
from firmware.cosem.profile import ProfileGeneric
from firmware.cosem.register import Register
from firmware.cosem.script import ScriptTable
from firmware.dlms import axdr
from firmware.dlms import results as R
from firmware.dlms.obis import (CLOCK, CURRENT_ASSOCIATION, DISCONNECT_CONTROL, HH_PROFILE,
                                IMPORT_ACTIVE_ENERGY, SAP_ASSIGNMENT, SUPPLY_SCRIPT_TABLE)

T0 = 1767225600
LDN = b"ABC0123456789012"


def _code(fn, *args):
    try:
        fn(*args)
    except (DataAccessError, ActionError) as e:
        return e.code
    return None


class FakeAssociation:
    def __init__(self, conformance, max_pdu_size):
        self.conformance = conformance
        self.max_pdu_size = max_pdu_size


class FakeServer:
    max_pdu_size = 512


class FakeSession:
    """Stand-in for firmware.dlms.server.DlmsSession: what Association LN reads."""

    def __init__(self, open_saps):
        self.server = FakeServer()
        self._open = open_saps

    def association(self, sap):
        return self._open.get(sap)


def _device():
    ld = LogicalDevice(sap=1, name=LDN)
    clock = Clock()
    reg = Register(IMPORT_ACTIVE_ENERGY, (axdr.DOUBLE_LONG_UNSIGNED, 7), 0, 30)
    pg = ProfileGeneric(HH_PROFILE, [(clock, 2), (reg, 2)], 1800, profile_entries=4)
    dc = DisconnectControl(DISCONNECT_CONTROL)
    st = ScriptTable(SUPPLY_SCRIPT_TABLE)
    sap = SapAssignment(SAP_ASSIGNMENT, [(1, LDN)])
    for o in (clock, reg, pg, sap):
        ld.add(o, {PUBLIC_CLIENT: read_only(o), MANAGEMENT_CLIENT: full_access(o)})
    for o in (dc, st):
        ld.add(o, {MANAGEMENT_CLIENT: full_access(o)})
    ld.add_client(PUBLIC_CLIENT, AUTH_LOWEST, None, AssociationLN(conformance=0x1C1F, max_receive_pdu_size=1024))
    ld.add_client(MANAGEMENT_CLIENT, AUTH_LOW, b"12345678", AssociationLN(conformance=0x1C1F))
    return ld, clock, reg, pg, dc, st, sap


def _listed(ld, sap):
    a = ld.client(sap).association
    rows = a.get(2, Context(T0, sap))[1]
    return [(r[1][0][1], r[1][2][1]) for r in rows], rows


def test_public_client_sees_only_what_the_profile_grants():
    ld = _device()[0]
    names, rows = _listed(ld, PUBLIC_CLIENT)
    assert names == [(15, CURRENT_ASSOCIATION), (8, CLOCK), (3, IMPORT_ACTIVE_ENERGY),
                     (7, HH_PROFILE), (17, SAP_ASSIGNMENT)]
    for r in rows[1:]:
        attrs, methods = r[1][3][1][0][1], r[1][3][1][1][1]
        assert [a[1][1] for a in attrs] == [(axdr.ENUM, 1)] * len(attrs)
        assert [m[1][1][1] for m in methods] == [0] * len(methods)


def test_management_client_sees_everything_with_methods():
    ld = _device()[0]
    names, rows = _listed(ld, MANAGEMENT_CLIENT)
    assert names == [(15, CURRENT_ASSOCIATION), (8, CLOCK), (3, IMPORT_ACTIVE_ENERGY),
                     (7, HH_PROFILE), (17, SAP_ASSIGNMENT), (70, DISCONNECT_CONTROL),
                     (9, SUPPLY_SCRIPT_TABLE)]
    dc_row = rows[5][1]
    attrs = [(a[1][0][1], a[1][1][1]) for a in dc_row[3][1][0][1]]
    assert attrs == [(1, 1), (2, 3), (3, 3), (4, 3)]
    assert [(m[1][0][1], m[1][1][1]) for m in dc_row[3][1][1][1]] == [(1, 1), (2, 1)]
    own = rows[0][1][3][1][0][1]
    assert [a[1][1][1] for a in own] == [1, 1, 1, 1, 1, 1, 2, 1, 1]   # secret write-only


def test_object_list_element_bytes():
    # Blue Book 4.4.3 object_list_element for a Register read-only to the client
    reg = Register(IMPORT_ACTIVE_ENERGY)
    enc = axdr.encode(object_list_element(reg, read_only(reg)))
    assert enc == bytes([
        0x02, 0x04, 0x12, 0x00, 0x03, 0x11, 0x00, 0x09, 0x06, 1, 0, 1, 8, 0, 255,
        0x02, 0x02,
        0x01, 0x03,
        0x02, 0x03, 0x0F, 0x01, 0x16, 0x01, 0x00,
        0x02, 0x03, 0x0F, 0x02, 0x16, 0x01, 0x00,
        0x02, 0x03, 0x0F, 0x03, 0x16, 0x01, 0x00,
        0x01, 0x01,
        0x02, 0x02, 0x0F, 0x01, 0x16, 0x00])


def test_profile_buffer_lists_its_selectors():
    ld, clock, reg, pg = _device()[:4]
    el = object_list_element(pg, read_only(pg))
    attrs = el[1][3][1][0][1]
    assert attrs[1][1][2] == (axdr.ARRAY, [(axdr.INTEGER, 1), (axdr.INTEGER, 2)])
    assert attrs[2][1][2] == (axdr.NULL_DATA, None)


def test_current_association_resolves_per_client():
    ld = _device()[0]
    pub = ld.find(15, CURRENT_ASSOCIATION, PUBLIC_CLIENT)
    mgt = ld.find(15, CURRENT_ASSOCIATION, MANAGEMENT_CLIENT)
    assert pub is ld.client(PUBLIC_CLIENT).association
    assert mgt is ld.client(MANAGEMENT_CLIENT).association
    assert pub is not mgt
    assert ld.find(15, CURRENT_ASSOCIATION) is None
    assert ld.find(15, CURRENT_ASSOCIATION, 99) is None
    assert ld.find(8, CLOCK) is not None and ld.find(3, CLOCK) is None


def test_access_helpers():
    ld, clock, reg, pg, dc, st, sap = _device()
    assert ld.attribute_access(PUBLIC_CLIENT, reg, 2) == 1
    assert ld.attribute_access(MANAGEMENT_CLIENT, reg, 2) == 3
    assert ld.attribute_access(MANAGEMENT_CLIENT, reg, 1) == 1
    assert ld.attribute_access(PUBLIC_CLIENT, reg, 4) == 0
    assert ld.method_access(PUBLIC_CLIENT, reg, 1) == 0
    assert ld.method_access(MANAGEMENT_CLIENT, reg, 1) == 1
    assert ld.rights(PUBLIC_CLIENT, dc) is None             # outside the association
    assert ld.attribute_access(PUBLIC_CLIENT, dc, 2) == 0
    pub = ld.client(PUBLIC_CLIENT).association
    assert ld.attribute_access(PUBLIC_CLIENT, pub, 7) == 0
    assert ld.attribute_access(MANAGEMENT_CLIENT, ld.client(MANAGEMENT_CLIENT).association, 7) == 2
    assert ld.rights(MANAGEMENT_CLIENT, pub) is None        # another client's association
    stranger = Register(IMPORT_ACTIVE_ENERGY)
    assert ld.rights(MANAGEMENT_CLIENT, stranger) is None   # same name, not this object
    rights = AccessRights([1, 3], [1])
    assert rights.can_read(1) and not rights.can_write(1) and rights.can_write(2)
    assert rights.can_invoke(1) and not rights.can_invoke(2)
    assert not AccessRights([0, 0], [0]).grants_anything()


def test_clients_and_configuration_errors():
    ld = _device()[0]
    assert [c.sap for c in ld.clients()] == [1, 16]
    assert ld.client(16).authentication == AUTH_LOWEST and ld.client(1).secret == b"12345678"
    assert ld.client(2) is None
    for bad in (lambda: ld.add(ld.find(8, CLOCK), {}), lambda: ld.add_client(16, 0),
                lambda: AccessRights([4]), lambda: AccessRights([1], [2])):
        try:
            bad()
            assert False
        except ValueError:
            pass
    assert len(ld.objects()) == 6


def test_a_client_without_authentication_is_read_only():
    ld = LogicalDevice()
    reg = Register(IMPORT_ACTIVE_ENERGY)
    ld.add_client(PUBLIC_CLIENT, AUTH_LOWEST, None, AssociationLN())
    ld.add_client(MANAGEMENT_CLIENT, AUTH_LOW, b"pw", AssociationLN())
    ld.add(reg, {PUBLIC_CLIENT: full_access(reg), MANAGEMENT_CLIENT: full_access(reg)})
    assert [ld.attribute_access(PUBLIC_CLIENT, reg, i) for i in (1, 2, 3)] == [1, 1, 1]
    assert ld.method_access(PUBLIC_CLIENT, reg, 1) == 0
    assert [ld.attribute_access(MANAGEMENT_CLIENT, reg, i) for i in (1, 2, 3)] == [1, 3, 3]
    assert ld.method_access(MANAGEMENT_CLIENT, reg, 1) == 1
    row = ld.client(PUBLIC_CLIENT).association.get(2, Context(T0, PUBLIC_CLIENT))[1][1]
    assert [a[1][1][1] for a in row[1][3][1][0][1]] == [1, 1, 1]
    assert [m[1][1][1] for m in row[1][3][1][1][1]] == [0]
    write_only = Register(CLOCK)
    ld.add(write_only, {PUBLIC_CLIENT: AccessRights([1, 2, 0])})
    assert ld.attribute_access(PUBLIC_CLIENT, write_only, 2) == 0


def test_association_attributes():
    ld = _device()[0]
    pub = ld.client(PUBLIC_CLIENT).association
    mgt = ld.client(MANAGEMENT_CLIENT).association
    ctx = Context(T0, PUBLIC_CLIENT)
    assert pub.get(1, ctx) == (axdr.OCTET_STRING, CURRENT_ASSOCIATION)
    assert pub.get(3, ctx) == (axdr.STRUCTURE, [(axdr.INTEGER, 16), (axdr.LONG_UNSIGNED, 1)])
    assert axdr.encode(pub.get(4, ctx)) == bytes([2, 7, 0x11, 2, 0x11, 16, 0x12, 0x02, 0xF4,
                                                  0x11, 5, 0x11, 8, 0x11, 1, 0x11, 1])
    assert pub.get(6, ctx)[1][5:] == [(axdr.UNSIGNED, 2), (axdr.UNSIGNED, 0)]
    assert mgt.get(6, Context(T0, 1))[1][6] == (axdr.UNSIGNED, 1)
    assert _code(pub.get, 7, ctx) == R.READ_WRITE_DENIED
    assert pub.get(8, ctx) == (axdr.ENUM, 0)
    assert pub.get(9, ctx) == (axdr.OCTET_STRING, b"\x00" * 6)
    info = pub.get(5, ctx)[1]
    assert info[0] == (axdr.BIT_STRING, (24, b"\x00\x1c\x1f"))
    assert info[1:] == [(axdr.LONG_UNSIGNED, 1024), (axdr.LONG_UNSIGNED, 1024),
                        (axdr.UNSIGNED, 6), (axdr.INTEGER, 0), (axdr.OCTET_STRING, b"")]


def test_association_answers_from_the_session():
    ld = _device()[0]
    pub = ld.client(PUBLIC_CLIENT).association
    session = FakeSession({PUBLIC_CLIENT: FakeAssociation(0x001018, 256)})
    ctx = Context(T0, PUBLIC_CLIENT, session)
    assert pub.get(8, ctx) == (axdr.ENUM, 2)
    info = pub.get(5, ctx)[1]
    assert info[0] == (axdr.BIT_STRING, (24, b"\x00\x10\x18"))
    assert info[1] == (axdr.LONG_UNSIGNED, 512) and info[2] == (axdr.LONG_UNSIGNED, 256)
    mgt = ld.client(MANAGEMENT_CLIENT).association
    assert mgt.get(8, Context(T0, MANAGEMENT_CLIENT, session)) == (axdr.ENUM, 0)


def test_secret_is_write_only_and_changes_the_password():
    ld = _device()[0]
    mgt = ld.client(MANAGEMENT_CLIENT).association
    ctx = Context(T0, MANAGEMENT_CLIENT)
    mgt.set(7, (axdr.OCTET_STRING, b"newpass!"), ctx)
    assert ld.client(MANAGEMENT_CLIENT).secret == b"newpass!"
    assert _code(mgt.set, 7, (axdr.VISIBLE_STRING, b"x"), ctx) == R.TYPE_UNMATCHED
    assert _code(mgt.set, 8, (axdr.ENUM, 2), ctx) == R.READ_WRITE_DENIED
    assert _code(mgt.set, 2, (axdr.ARRAY, []), ctx) == R.READ_WRITE_DENIED
    mgt.set(9, (axdr.OCTET_STRING, b"\x00\x00\x2b\x00\x00\xff"), ctx)
    assert _code(mgt.set, 9, (axdr.OCTET_STRING, b"\x00"), ctx) == R.OTHER_REASON


def test_no_hls_methods():
    ld = _device()[0]
    mgt = ld.client(MANAGEMENT_CLIENT).association
    ctx = Context(T0, MANAGEMENT_CLIENT)
    for m in range(1, 7):
        assert _code(mgt.action, m, (axdr.OCTET_STRING, b"x"), ctx) == R.ACTION_OBJECT_UNAVAILABLE
    assert _code(mgt.action, 7, (axdr.INTEGER, 0), ctx) == R.ACTION_OBJECT_UNDEFINED


def test_sap_assignment():
    sap = SapAssignment(SAP_ASSIGNMENT, [(1, LDN)])
    ctx = Context(T0, 1)
    assert sap.get(2, ctx) == (axdr.ARRAY, [(axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 1),
                                                              (axdr.OCTET_STRING, LDN)])])
    sap.action(1, (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 2), (axdr.OCTET_STRING, b"X")]), ctx)
    sap.action(1, (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 1), (axdr.OCTET_STRING, b"Y")]), ctx)
    assert sap.assignments == [(1, b"Y"), (2, b"X")]
    sap.action(1, (axdr.STRUCTURE, [(axdr.LONG_UNSIGNED, 2), (axdr.OCTET_STRING, b"")]), ctx)
    assert sap.assignments == [(1, b"Y")]
    assert _code(sap.action, 1, (axdr.UNSIGNED, 1), ctx) == R.ACTION_TYPE_UNMATCHED
    assert _code(sap.set, 2, (axdr.ARRAY, []), ctx) == R.READ_WRITE_DENIED
    saved = json.loads(json.dumps(sap.state()))
    other = SapAssignment()
    other.restore(saved)
    assert other.assignments == [(1, b"Y")]


def test_logical_device_state_round_trip():
    ld, clock, reg, pg, dc, st, sap = _device()
    reg.value = (axdr.DOUBLE_LONG_UNSIGNED, 99)
    pg.store_entry(T0, [(axdr.OCTET_STRING, b"\x00" * 12), (axdr.DOUBLE_LONG_UNSIGNED, 1)])
    dc.action(1, (axdr.INTEGER, 0), Context(T0, 1))
    ld.client(MANAGEMENT_CLIENT).association.set(7, (axdr.OCTET_STRING, b"pw"), Context(T0, 1))
    saved = json.loads(json.dumps(ld.state()))
    ld2, clock2, reg2, pg2, dc2 = _device()[:5]
    ld2.restore(saved)
    ctx = Context(T0, 1)
    assert reg2.get(2, ctx) == (axdr.DOUBLE_LONG_UNSIGNED, 99)
    assert pg2.get(2, ctx) == pg.get(2, ctx)
    assert dc2.control_state == 0
    assert ld2.client(MANAGEMENT_CLIENT).secret == b"pw"
