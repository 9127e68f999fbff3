"""The device's remote-party trust anchors (GBCS 4.3.2, SMKI).

A SMETS2 device holds one trust-anchor cell per remote-party role and cell usage
(management, or prepayment top-up for the supplier): root, recovery, supplier (DS + KA,
and a prepayment-top-up KA cell), network operator, ACB (KA for the MAC, DS), transitional
CoS, WAN provider. Each key in a cell carries the EUI-64 of its owner (the certificate's
subject unique identifier) and, when it came from a certificate, its subject key id.

    anchors = TrustAnchors()
    anchors.set(ROLE_SUPPLIER, CELL_MANAGEMENT, eui, ds_public=xy, ka_public=xy)
    cell = anchors.get(ROLE_SUPPLIER)            # AnchorCell or None
    anchors.find(eui) -> [AnchorCell...]          # every cell holding a key of that party
    anchors.state() -> dict; TrustAnchors.restore(dict)   JSON-safe
"""

import binascii

from firmware.gbcs.codes import CELL_MANAGEMENT, CELL_PREPAYMENT, ROLE_NAMES

DS = "ds"
KA = "ka"
_USAGES = (DS, KA)


class AnchorError(Exception):
    """A trust anchor that cannot be stored (bad role, cell or key size)."""


class AnchorKey:
    """One public key in a cell: x||y (64 bytes), its owner's EUI-64, its subject key id."""

    def __init__(self, eui, public, key_id=None):
        self.eui = bytes(eui)
        self.public = bytes(public)
        self.key_id = None if key_id is None else bytes(key_id)


class AnchorCell:
    """The keys of one role and cell usage. `eui` is the DS key's owner, else the KA's."""

    def __init__(self, role, cell):
        self.role = role
        self.cell = cell
        self.keys = {}          # DS / KA -> AnchorKey

    @property
    def eui(self):
        key = self.keys.get(DS) or self.keys.get(KA)
        return None if key is None else key.eui

    @property
    def ds_public(self):
        key = self.keys.get(DS)
        return None if key is None else key.public

    @property
    def ka_public(self):
        key = self.keys.get(KA)
        return None if key is None else key.public

    def key(self, usage):
        return self.keys.get(usage)

    def holds(self, eui):
        for usage in self.keys:
            if self.keys[usage].eui == eui:
                return True
        return False

    def __repr__(self):
        return "AnchorCell(%s, %d, %s)" % (ROLE_NAMES.get(self.role, self.role), self.cell,
                                           _hex(self.eui))


class TrustAnchors:
    def __init__(self):
        self._cells = {}        # (role, cell) -> AnchorCell
        self._found = {}        # EUI -> what find() gave, until a cell changes


    def set(self, role, cell, eui, ds_public=None, ka_public=None, ds_key_id=None,
            ka_key_id=None):
        """Install (or replace) the keys given; keys not given are left as they were."""
        _check_cell(role, cell)
        _check_eui(eui)
        given = ((DS, ds_public, ds_key_id), (KA, ka_public, ka_key_id))
        for usage, public, key_id in given:        # check everything before storing any
            if public is not None and len(public) != 64:
                raise AnchorError("%s public key must be 64 bytes x||y" % usage)
        target = self._cells.get((role, cell))
        if target is None:
            target = AnchorCell(role, cell)
        for usage, public, key_id in given:
            if public is not None:
                target.keys[usage] = AnchorKey(eui, public, key_id)
        self._cells[(role, cell)] = target
        self._found = {}
        return target

    def set_key(self, role, cell, usage, eui, public, key_id=None):
        """Install one key of a cell (what a CS02b trust-anchor replacement targets)."""
        if usage == DS:
            return self.set(role, cell, eui, ds_public=public, ds_key_id=key_id)
        if usage == KA:
            return self.set(role, cell, eui, ka_public=public, ka_key_id=key_id)
        raise AnchorError("key usage must be ds or ka")

    def get(self, role, cell=CELL_MANAGEMENT):
        return self._cells.get((role, cell))

    def remove(self, role, cell=CELL_MANAGEMENT):
        self._cells.pop((role, cell), None)
        self._found = {}

    def find(self, eui):
        """Every cell holding a key owned by `eui`, management cells first (each command
        asks about its originator several times: the answer is kept until a cell changes,
        for a few parties)."""
        eui = bytes(eui)
        found = self._found.get(eui)
        if found is None:
            found = []
            for key in sorted(self._cells):
                cell = self._cells[key]
                if cell.holds(eui):
                    found.append(cell)
            found.sort(key=_cell_order)     # MicroPython sort is not stable
            if len(self._found) >= _FOUND_KEPT:
                self._found = {}
            self._found[eui] = found
        return list(found)

    def roles_of(self, eui):
        roles = []
        for cell in self.find(eui):
            if cell.role not in roles:
                roles.append(cell.role)
        return roles

    def cells(self):
        return [self._cells[key] for key in sorted(self._cells)]

    def copy(self):
        return TrustAnchors.restore(self.state())

    # -- persistence ---------------------------------------------------------------------
    def state(self):
        cells = []
        for cell in self.cells():
            keys = {}
            for usage in cell.keys:
                key = cell.keys[usage]
                keys[usage] = {"eui": _hex(key.eui), "public": _hex(key.public),
                               "key_id": None if key.key_id is None else _hex(key.key_id)}
            cells.append({"role": cell.role, "cell": cell.cell, "keys": keys})
        return {"cells": cells}

    @classmethod
    def restore(cls, state):
        anchors = cls()
        for entry in state.get("cells", ()):
            keys = entry["keys"]
            for usage in _USAGES:
                if usage in keys:
                    key = keys[usage]
                    key_id = key.get("key_id")
                    anchors.set_key(entry["role"], entry["cell"], usage, _unhex(key["eui"]),
                                    _unhex(key["public"]),
                                    None if key_id is None else _unhex(key_id))
        return anchors


_FOUND_KEPT = 8


def _cell_order(cell):
    return (cell.cell, cell.role)


def _check_cell(role, cell):
    if role not in ROLE_NAMES:
        raise AnchorError("unknown remote-party role %r" % (role,))
    if cell not in (CELL_MANAGEMENT, CELL_PREPAYMENT):
        raise AnchorError("cell usage must be management (0) or prepayment top-up (1)")


def _check_eui(eui):
    if eui is None or len(eui) != 8:
        raise AnchorError("an anchor's EUI-64 must be 8 bytes")


def _hex(data):
    if data is None:
        return None
    return binascii.hexlify(data).decode()


def _unhex(text):
    return binascii.unhexlify(text)
