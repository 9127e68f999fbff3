"""A device installed by supplier A with the DCC as its ACB, as the stateful ESME and GSME
machines set theirs up: the keys each side holds, the anchors the device trusts, and the
commands and UTRNs the supplier and the DCC send it."""

from emulator import smki
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.gbcs import codes, envelope, security, utrn
from firmware.gbcs.anchors import TrustAnchors


class InstalledDevice:
    def __init__(self, crypto, pki, eui, supplier, acb):
        self.crypto, self.eui, self.supplier, self.acb = crypto, eui, supplier, acb
        self.org = {supplier: pki.organisation(supplier, smki.ROLE_SUPPLIER, "SUPPLIER A"),
                    acb: pki.organisation(acb, smki.ROLE_ACB, "DCC")}
        self.device = pki.device(eui)

    @classmethod
    def in_lab(cls, lab, eui, supplier, acb):
        """The parties as an `emulator.lab.Lab` installed them (its keys, nothing issued
        again): commands to one of its devices as its DCC sends them."""
        installed = cls.__new__(cls)
        installed.crypto, installed.eui = lab.crypto, eui
        installed.supplier, installed.acb = supplier, acb
        installed.org = {party: lab.pki.organisations[party] for party in (supplier, acb)}
        installed.device = lab.pki.devices[eui]
        return installed

    def anchors(self):
        anchors = TrustAnchors()
        supplier, acb = self.org[self.supplier], self.org[self.acb]
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, self.supplier,
                    ds_public=supplier["ds"].public_xy, ka_public=supplier["ka"].public_xy)
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_PREPAYMENT, self.supplier,
                    ka_public=supplier["pp-ka"].public_xy)
        anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, self.acb,
                    ds_public=acb["ds"].public_xy, ka_public=acb["ka"].public_xy)
        return anchors

    def context(self, counter, now):
        return BuildContext(counter, self.supplier, self.eui, now, self.crypto,
                            self.org[self.supplier]["ka"].private_key,
                            self.device["ka"].public_xy)

    def command(self, use_case, params, counter, now, recipient=None):
        """A command as the DCC sends it: the supplier's payload, signed by the supplier
        when the use case is critical, MAC'd by the DCC as ACB."""
        uc = USE_CASE_BUILDERS[use_case]
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, counter, self.supplier,
                                       recipient or self.eui, uc.message_code,
                                       uc.build(params, self.context(counter, now)))
        if uc.critical:
            security.sign(self.crypto, self.org[self.supplier]["ds"].private_key, message)
        shared = self.crypto.ecdh(self.org[self.acb]["ka"].private_key,
                                  self.device["ka"].public_xy)
        return security.protect_mac(self.crypto, shared, message).encode()

    def mint(self, counter_hi, pence, target=None):
        """A UTRN from the supplier's prepayment key for `target` (another meter's UTRN
        does not authenticate at this one)."""
        shared = self.crypto.ecdh(self.org[self.supplier]["pp-ka"].private_key,
                                  self.device["ka"].public_xy)
        return utrn.mint(self.crypto, shared, self.supplier, target or self.eui,
                         counter_hi << 32, utrn.CLASS_PENCE, pence)
