# Trust-anchor cells of a device (GBCS 4.3.2): plain asserts, runs under MicroPython too.

import json
from binascii import unhexlify

from firmware.gbcs import codes
from firmware.gbcs.anchors import DS, KA, AnchorError, TrustAnchors

SUPPLIER = unhexlify("90B3D51F30010000")
NEW_SUPPLIER = unhexlify("90B3D51F30030000")
ACB = unhexlify("90B3D51F30000002")


def _key(n):
    return bytes((n,)) * 64


def _raises_anchor_error(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except AnchorError:
        return True
    return False


def test_set_and_get_a_cell():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1),
                ka_public=_key(2))
    cell = anchors.get(codes.ROLE_SUPPLIER)
    assert cell.role == codes.ROLE_SUPPLIER
    assert cell.eui == SUPPLIER
    assert cell.ds_public == _key(1)
    assert cell.ka_public == _key(2)
    assert anchors.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT) is None
    assert anchors.get(codes.ROLE_ACB) is None


def test_partial_set_keeps_the_other_key():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ka_public=_key(3))
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ds_public=_key(4))
    cell = anchors.get(codes.ROLE_ACB)
    assert cell.ka_public == _key(3)
    assert cell.ds_public == _key(4)


def test_replacing_a_key_changes_its_owner():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1),
                ka_public=_key(2))
    anchors.set_key(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, DS, NEW_SUPPLIER, _key(9),
                    key_id=b"\x01" * 8)
    cell = anchors.get(codes.ROLE_SUPPLIER)
    assert cell.key(DS).eui == NEW_SUPPLIER
    assert cell.key(DS).key_id == b"\x01" * 8
    assert cell.key(KA).eui == SUPPLIER          # the KA key was not replaced
    assert anchors.find(NEW_SUPPLIER) == [cell]
    assert anchors.find(SUPPLIER) == [cell]


def test_find_by_eui_lists_management_before_prepayment():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER, ka_public=_key(5))
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1))
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ka_public=_key(3))
    found = anchors.find(SUPPLIER)
    assert [c.cell for c in found] == [codes.CELL_MANAGEMENT, codes.CELL_PREPAYMENT]
    assert anchors.roles_of(SUPPLIER) == [codes.ROLE_SUPPLIER]
    assert anchors.roles_of(ACB) == [codes.ROLE_ACB]
    assert anchors.find(NEW_SUPPLIER) == []


def test_one_party_in_two_roles():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ka_public=_key(3))
    anchors.set(codes.ROLE_NETWORK_OPERATOR, codes.CELL_MANAGEMENT, ACB, ds_public=_key(4))
    roles = anchors.roles_of(ACB)
    assert len(roles) == 2
    assert codes.ROLE_ACB in roles and codes.ROLE_NETWORK_OPERATOR in roles


def test_remove_a_cell():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1))
    anchors.remove(codes.ROLE_SUPPLIER)
    assert anchors.get(codes.ROLE_SUPPLIER) is None
    assert anchors.find(SUPPLIER) == []
    anchors.remove(codes.ROLE_SUPPLIER)          # removing twice is harmless


def test_state_is_json_safe_and_restores():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1),
                ka_public=_key(2), ds_key_id=b"\x44" * 8)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, SUPPLIER, ka_public=_key(5))
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB, ka_public=_key(3))
    text = json.dumps(anchors.state())
    again = TrustAnchors.restore(json.loads(text))
    assert again.state() == anchors.state()
    cell = again.get(codes.ROLE_SUPPLIER)
    assert cell.ds_public == _key(1) and cell.ka_public == _key(2)
    assert cell.key(DS).key_id == b"\x44" * 8
    assert cell.key(KA).key_id is None
    assert again.get(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT).ka_public == _key(5)


def test_copy_is_independent():
    anchors = TrustAnchors()
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER, ds_public=_key(1))
    copy = anchors.copy()
    copy.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, NEW_SUPPLIER, ds_public=_key(7))
    assert anchors.get(codes.ROLE_SUPPLIER).eui == SUPPLIER
    assert copy.get(codes.ROLE_SUPPLIER).eui == NEW_SUPPLIER


def test_bad_anchors_are_refused():
    anchors = TrustAnchors()
    assert _raises_anchor_error(anchors.set, 99, codes.CELL_MANAGEMENT, SUPPLIER,
                                ds_public=_key(1))
    assert _raises_anchor_error(anchors.set, codes.ROLE_SUPPLIER, 2, SUPPLIER,
                                ds_public=_key(1))
    assert _raises_anchor_error(anchors.set, codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT,
                                SUPPLIER[:7], ds_public=_key(1))
    assert _raises_anchor_error(anchors.set, codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT,
                                SUPPLIER, ds_public=b"\x04" + _key(1))
    assert _raises_anchor_error(anchors.set_key, codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT,
                                "sig", SUPPLIER, _key(1))
    assert anchors.cells() == []                # nothing half-stored
