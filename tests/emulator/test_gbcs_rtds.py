"""Every GBCS message of the RTDS 4.5.0 subset: parse, re-encode, verify MAC and signature.

Vectors: tests/vectors/gbcs (copied from shared/vectors/gbcs; provenance in its README).
A message whose keys the data set does not publish is counted and explained, never
silently passed.
"""

import collections
import pathlib

import pytest

from emulator.crypto import HostCrypto, KeyStore
from firmware.gbcs import envelope, security

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = sorted((VECTORS / "rtds-4.5.0").glob("*/*.HEX"))
ACB_EUI = bytes.fromhex("90B3D51F30000002")  # the DCC as Access Control Broker in RTDS

DEVICE_TO_DEVICE = "between two HAN devices (PPMID-ESME); RTDS publishes neither KA private key"
KEYSTORE = KeyStore(VECTORS / "keystore")
CRYPTO = HostCrypto()


def _load(path):
    return bytes.fromhex(path.read_text().strip())


def _mac_parties(message):
    """(private key, peer public x||y) for the MAC, or the reason there is none.

    Commands from a remote party are MAC'd by the ACB's KA key with the device's KA key
    (GBCS 4.3.3); responses and alerts by the device's KA key with the recipient's.
    """
    if KEYSTORE.is_device(message.originator) and KEYSTORE.is_device(message.recipient):
        return None, DEVICE_TO_DEVICE
    if message.cra_flag == envelope.CRA_COMMAND:
        private = KEYSTORE.private_key(ACB_EUI, "ka")
        peer = KEYSTORE.public_key(message.recipient, "ka")
    else:
        private = KEYSTORE.private_key(message.recipient, "ka")
        peer = KEYSTORE.public_key(message.originator, "ka")
    if private is None or peer is None:
        return None, "keystore lacks a KA key for this pair"
    return (private, peer), None


def check(path):
    """Returns a Counter of outcomes for one message and a list of unexplained failures."""
    outcome = collections.Counter()
    failures = []
    raw = _load(path)
    message = envelope.parse(raw)
    outcome["parsed"] += 1
    if message.encode() != raw:
        failures.append(f"{path.name}: re-encoding differs")
    if message.mac_protected:
        parties, why = _mac_parties(message)
        if parties is None:
            outcome[f"MAC not checked: {why}"] += 1
        elif security.verify_mac(CRYPTO, CRYPTO.ecdh(*parties), message):
            outcome["MAC verified"] += 1
        else:
            failures.append(f"{path.name}: MAC does not verify")
    if message.signature is not None:
        public = KEYSTORE.public_key(message.originator, "ds")
        if public is None:
            outcome["signature not checked: no DS certificate"] += 1
        elif security.verify_signature(CRYPTO, public, message):
            outcome["signature verified"] += 1
        else:
            failures.append(f"{path.name}: signature does not verify")
    elif not message.signature_field:
        outcome["pre-command (no signature field)"] += 1
    return outcome, failures


def test_vectors_are_present():
    assert len(RTDS) == 621


def test_every_rtds_message_parses_and_verifies(capsys):
    totals = collections.Counter()
    failures = []
    for path in RTDS:
        try:
            outcome, failed = check(path)
        except envelope.GbcsError as exc:
            failures.append(f"{path.name}: {exc}")
            continue
        totals.update(outcome)
        failures.extend(failed)
    with capsys.disabled():
        print("\nRTDS 4.5.0 GBCS messages:")
        for key, count in sorted(totals.items()):
            print(f"  {count:4d}  {key}")
    assert not failures, "\n".join(failures)
    assert totals["parsed"] == len(RTDS)
    assert totals["MAC verified"] >= 386
    assert totals["signature verified"] >= 241
    unchecked = {k: n for k, n in totals.items() if k.startswith("MAC not checked")}
    assert unchecked == {f"MAC not checked: {DEVICE_TO_DEVICE}": 2}, unchecked


def _mac_only(path):
    message = envelope.parse(_load(path))
    return message.mac_protected and message.signature is None and _mac_parties(message)[0] is not None


MAC_ONLY = [p for p in RTDS if _mac_only(p)]


def test_there_are_mac_only_messages_to_rebuild():
    assert len(MAC_ONLY) > 200


@pytest.mark.parametrize("path", MAC_ONLY, ids=lambda p: p.name)
def test_mac_only_messages_rebuild_byte_for_byte(path):
    """Same keys, counter, EUIs, date-time and payload give the same bytes."""
    original = envelope.parse(_load(path))
    parties, why = _mac_parties(original)
    assert parties is not None, why
    rebuilt = envelope.GbcsMessage(
        original.cra_flag, original.originator_counter, original.originator,
        original.recipient, original.message_code, original.payload,
        date_time=original.date_time,
        supplementary_remote_party=original.supplementary_remote_party,
        supplementary_remote_counter=original.supplementary_remote_counter,
        other_info_tail=original.other_info_tail)
    security.protect_mac(CRYPTO, CRYPTO.ecdh(*parties), rebuilt)
    assert rebuilt.encode() == _load(path)


@pytest.mark.parametrize("corruption", ["payload", "mac", "counter"])
def test_tampering_is_detected(corruption):
    path = next(p for p in RTDS if p.name == "ECS42_7.1_SUCCESS_COMMAND_GBCS.HEX")
    message = envelope.parse(_load(path))
    if corruption == "payload":
        message.payload = message.payload[:-1] + bytes([message.payload[-1] ^ 1])
    elif corruption == "mac":
        message.mac = bytes([message.mac[0] ^ 0x80]) + message.mac[1:]
    else:
        message.originator_counter += 1
    parties, _ = _mac_parties(message)
    assert not security.verify_mac(CRYPTO, CRYPTO.ecdh(*parties), message)
    if corruption != "mac":
        public = KEYSTORE.public_key(message.originator, "ds")
        assert not security.verify_signature(CRYPTO, public, message)


@pytest.mark.parametrize("cut", [1, 5, 14, 30, 60])
def test_truncated_message_names_the_offset(cut):
    raw = _load(RTDS[0])[:-cut]
    with pytest.raises(envelope.GbcsError) as info:
        envelope.parse(raw)
    assert info.value.offset >= 0 and info.value.reason
