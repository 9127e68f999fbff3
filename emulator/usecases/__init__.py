"""DCC-side use-case payload builders and response readers (docs/GBCS_INTERFACES.md 5).

    uc = USE_CASE_BUILDERS["ECS17b"]
    payload = uc.build(params, ctx)          # the GBCS payload (DLMS ACCESS, GBZ, ASN.1)
    fields = uc.read_response(payload, ctx)  # decrypts encrypted fields

A builder knows one use case's payload: its message code and criticality come from
`firmware.gbcs.codes` (one source of truth); the envelope, signature and MAC are the
caller's (DCC, head-end, tests). Modules register their builders on import:
`esme` (ECS..., CS01a), and, where present, `gsme`, `hub`, `credentials`.
"""

from __future__ import annotations

import importlib

from firmware.gbcs import codes


class UseCaseError(Exception):
    """A payload that cannot be built from the parameters, or a response that cannot be
    read (malformed, or an encrypted field that does not verify)."""


class BuildContext:
    """What a builder needs besides the use case's own parameters.

    counter      the GBCS originator counter of the command (the ACCESS long-invoke-id
                 and the Data protection transaction id carry it)
    originator   EUI-64 of the party the command is from (and for whom reads are
                 encrypted, unless `requester` says otherwise)
    target       EUI-64 of the device
    now          integer seconds since 1970 UTC (dates the builders compute)
    crypto       HostCrypto (or any object with the firmware crypto interface)
    ka_private   the requester's KA private key (to decrypt encrypted fields)
    target_ka_public  the device's KA public key (x||y)
    """

    def __init__(self, counter, originator, target, now=0, crypto=None, ka_private=None,
                 target_ka_public=None, requester=None):
        self.counter = counter
        self.originator = bytes(originator)
        self.target = bytes(target)
        self.now = now
        self.crypto = crypto
        self.ka_private = ka_private
        self.target_ka_public = target_ka_public
        self.requester = bytes(requester) if requester is not None else self.originator


class UseCase:
    """One use case: `build(params, ctx) -> bytes`, `read_response(payload, ctx) -> dict`."""

    name = ""

    @property
    def message_code(self):
        return codes.USE_CASES[self.name][0]

    @property
    def critical(self):
        return codes.USE_CASES[self.name][1]

    def build(self, params, ctx):
        raise NotImplementedError

    def read_response(self, payload, ctx):
        raise NotImplementedError


USE_CASE_BUILDERS: dict[str, UseCase] = {}


def register(cls):
    """Class decorator: one instance of `cls` goes into the registry under its name."""
    if cls.name not in codes.USE_CASES:
        raise ValueError("%s is not a use case in firmware.gbcs.codes" % cls.name)
    USE_CASE_BUILDERS[cls.name] = cls()
    return cls


def _load(module):
    try:
        importlib.import_module("emulator.usecases." + module)
    except ModuleNotFoundError as e:
        if e.name != "emulator.usecases." + module:
            raise


for _module in ("esme", "gsme", "hub", "credentials"):
    _load(_module)
del _module
