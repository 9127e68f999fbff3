"""CS02b Update Security Credentials, DCC side (GBCS 13.3.2.4; SRV 6.15.1, 6.21, 6.23, 8.5).

The payload is built with the host ASN.1 codec (`emulator.codec.gbcs_asn1`, written from
the GBCS ASN.1 module); RTDS 4.5.0 shapes are rebuilt byte for byte in
tests/emulator/test_credentials_usecases.py. Parameters (the DCC's `use_case_params`):

  ds_certificate, ka_certificate, pp_ka_certificate   the replacing certificates (DER
        bytes, `cryptography` certificates or `emulator.smki.Credential`); any left out
        (None) is not replaced
  path_certificates     the certification path (the issuing organisation CA)
  floor, prepayment_floor   the new party's counter floors (default 0)
  apply_cpv_checks      False writes applyTimeBasedCPVChecks = disapply (True: absent)
  execution_date_time   seconds since 1970 UTC, a GeneralizedTime text, or None
  cancel                True: cancel the pending future-dated update (9999-12-31)

authorisingRemotePartySeqNumber is the command's originator counter (`ctx.counter`).
Where the floors go differs by variant, as RTDS writes them:
  own party (6.15.1 supplier-by-supplier, 6.21 NO-by-NO, 8.5 ACB-by-ACB): control [4]
      newRemotePartyFloorSeqNumber, and [5] the prepayment floor when the supplier's
      prepayment cell is replaced;
  by another party (6.23 supplier-by-TransCoS): control [6] otherRemotePartySeqNumberChanges
      {supplier, floor, [prepayment floor]}, absent in a cancellation (RTDS 6.23
      CANCELLATION).

`read_response` gives {"accepted", "pending" (future-dated: outcome to follow in the
0x00CB alert), "ok", "outcome"}; `read_alert` reads that alert's payload.
"""

from __future__ import annotations

import time

from emulator.codec import gbcs_asn1
from emulator.codec.errors import CodecError
from emulator.usecases import UseCase, UseCaseError, register
from firmware.gbcs import codes
from firmware.gbcs import credentials as cs02

CANCEL = cs02.CANCEL_EXECUTION_DATE_TIME
DS = codes.KEY_USAGE_DIGITAL_SIGNATURE
KA = codes.KEY_USAGE_KEY_AGREEMENT


def der(certificate):
    """DER bytes of a certificate given as bytes, a `cryptography` certificate or an
    `emulator.smki.Credential`; None stays None."""
    if certificate is None:
        return None
    certificate = getattr(certificate, "certificate", certificate)
    if hasattr(certificate, "public_bytes"):
        from cryptography.hazmat.primitives.serialization import Encoding
        certificate = certificate.public_bytes(Encoding.DER)
    if not isinstance(certificate, (bytes, bytearray)) or certificate[:1] != b"\x30":
        raise UseCaseError("a certificate must be DER (a SEQUENCE)")
    return bytes(certificate)


def generalized_time(when):
    if when is None or isinstance(when, str):
        return when
    return time.strftime("%Y%m%d%H%M%SZ", time.gmtime(int(when)))


def _cell(role, key_usage, cell_usage=codes.CELL_MANAGEMENT):
    return {"role": role, "key_usage": key_usage,
            "cell_usage": None if cell_usage == codes.CELL_MANAGEMENT else cell_usage}


def _plain(value):
    """construct Containers/ListContainers -> plain dicts and lists (no `_io` keys)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _Cs02b(UseCase):
    """One credentials replacement mode: whose cells are replaced, who authorises, and
    where the new party's floors go."""

    role = codes.ROLE_SUPPLIER               # the party whose trust anchors are replaced
    authorising_role = codes.ROLE_SUPPLIER   # None: no authorising cell (ACB-by-ACB)
    floors_as_other_change = False           # True: control [6], else [4]/[5]

    def build(self, params, ctx):
        cancel = bool(params.get("cancel"))
        when = CANCEL if cancel else generalized_time(params.get("execution_date_time"))
        replacements = self._replacements(params)
        if not replacements:
            raise UseCaseError("%s replaces no certificate" % self.name)
        path = [der(c) for c in params.get("path_certificates") or ()]
        value = {"control": self._control(params, ctx, cancel, replacements),
                 "replacements": replacements, "path": path, "execution_date_time": when}
        try:
            return gbcs_asn1.encode("cs02b_command", value)
        except CodecError as e:
            raise UseCaseError("%s: %s" % (self.name, e))

    def _replacements(self, params):
        out = []
        for key, usage, cell in (("ds_certificate", DS, codes.CELL_MANAGEMENT),
                                 ("ka_certificate", KA, codes.CELL_MANAGEMENT),
                                 ("pp_ka_certificate", KA, codes.CELL_PREPAYMENT)):
            certificate = der(params.get(key))
            if certificate is not None:
                if cell == codes.CELL_PREPAYMENT and self.role != codes.ROLE_SUPPLIER:
                    raise UseCaseError("only a supplier has a prepayment cell")
                out.append({"certificate": certificate,
                            "target": _cell(self.role, usage, cell)})
        return out

    def _control(self, params, ctx, cancel, replacements):
        floor = int(params.get("floor", 0))
        prepayment = [{"usage": cs02.SEQ_NUMBER_USAGE_PREPAYMENT_TOP_UP,
                       "seq_number": int(params.get("prepayment_floor", 0))}]
        has_prepayment = any(r["target"]["cell_usage"] == codes.CELL_PREPAYMENT
                             for r in replacements)
        control = {
            "mode": codes.CS02B_MODE[self.message_code], "plaintext_key": None,
            "cpv_checks": (None if params.get("apply_cpv_checks", True)
                           else cs02.DISAPPLY_CPV_CHECKS),
            "authorising_cell": (None if self.authorising_role is None
                                 else _cell(self.authorising_role, DS)),
            "seq_number": ctx.counter, "new_floor": None, "new_specialist_floors": None,
            "other_changes": None}
        if not self.floors_as_other_change:
            control["new_floor"] = floor
            control["new_specialist_floors"] = prepayment if has_prepayment else None
        elif not cancel:
            control["other_changes"] = [{"role": self.role, "floor": floor,
                                         "specialist": prepayment if has_prepayment
                                         else None}]
        return control

    def read_response(self, payload, ctx):
        try:
            value = gbcs_asn1.decode("cs02b_response", payload)
        except CodecError as e:
            raise UseCaseError("not a CS02b response: %s" % e)
        outcome = _plain(value.outcome) if value.outcome is not None else None
        return {"accepted": True, "pending": outcome is None, "outcome": outcome,
                "ok": outcome is not None and _all_succeeded(outcome)}

    def read_alert(self, payload, ctx=None):
        """The future-dated alert (message code 0x00CB): 0x8F66 actioned, 0x8F67 not."""
        try:
            value = gbcs_asn1.decode("cs02b_alert", payload)
        except CodecError as e:
            raise UseCaseError("not a CS02b alert: %s" % e)
        outcome = _plain(value.outcome)
        return {"alert_code": value.alert_code,
                "execution_date_time": value.execution_date_time, "outcome": outcome,
                "ok": (value.alert_code == codes.ALERT_FUTURE_DATED_ACTIONED
                       and _all_succeeded(outcome))}


def _all_succeeded(outcome):
    results = outcome["outcomes"]
    return bool(results) and all(r["status"] == codes.STATUS_SUCCESS for r in results)


@register
class CS02bSupplierBySupplier(_Cs02b):
    """SRV 6.15.1: a supplier replaces its own credentials (RTDS mode 2)."""
    name = "CS02bSupplierBySupplier"


@register
class CS02b(CS02bSupplierBySupplier):
    """The generic name in codes.USE_CASES: the supplier-by-supplier message code."""
    name = "CS02b"


@register
class CS02bSupplierByTransCoS(_Cs02b):
    """SRV 6.23 change of supplier: the Transitional CoS party authorises the incoming
    supplier's credentials (RTDS mode 7)."""
    name = "CS02bSupplierByTransCoS"
    authorising_role = codes.ROLE_TRANSITIONAL_COS
    floors_as_other_change = True


@register
class CS02bNOByNO(_Cs02b):
    """SRV 6.15.1 / 6.21: a network operator replaces its own credentials (mode 3)."""
    name = "CS02bNOByNO"
    role = codes.ROLE_NETWORK_OPERATOR
    authorising_role = codes.ROLE_NETWORK_OPERATOR


@register
class CS02bACBByACB(_Cs02b):
    """SRV 8.5: the ACB replaces its own credentials (mode 4; RTDS names no authorising
    cell)."""
    name = "CS02bACBByACB"
    role = codes.ROLE_ACB
    authorising_role = None
