"""The trust anchors a device installed by supplier A with the DCC's ACB holds: what the
stateful ESME and GSME machines give their devices."""

from firmware.gbcs import codes
from firmware.gbcs.anchors import TrustAnchors


def supplier_and_acb_anchors(org, supplier, acb):
    """`org`: {EUI: TestSmki organisation} for the supplier and the ACB."""
    anchors = TrustAnchors()
    supplier_keys, acb_keys = org[supplier], org[acb]
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, supplier,
                ds_public=supplier_keys["ds"].public_xy, ka_public=supplier_keys["ka"].public_xy)
    anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, supplier,
                ka_public=supplier_keys["pp-ka"].public_xy)
    anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, acb, ds_public=acb_keys["ds"].public_xy,
                ka_public=acb_keys["ka"].public_xy)
    return anchors
