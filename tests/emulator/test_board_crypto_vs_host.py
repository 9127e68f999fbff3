"""BoardCrypto (firmware/crypto, pure Python) against HostCrypto (`cryptography`): each is
the other's oracle (ARCHITECTURE.md principle 3 applied to the crypto).

- properties: the same ECDH secret, GCM ciphertext and tag, GMAC; both refuse the same
  non-points; each verifies the other's signatures, and the board's RFC 6979 signature
  is byte for byte OpenSSL's deterministic one (cryptography's deterministic_signing);
- RTDS 4.5.0: every signature and every MAC HostCrypto verifies, BoardCrypto verifies;
- the ESME's GBCS port (firmware/devices/esme_gbcs.py) run on BoardCrypto answers
  commands built, signed and MAC'd by the host, and the host verifies its answers.
"""

import pathlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings, strategies as st

from emulator import smki
from emulator.crypto import HostCrypto, KeyStore, public_xy
from emulator.profiles import load_profile
from emulator.usecases import USE_CASE_BUILDERS, BuildContext
from firmware.cosem.disconnect import CONNECTED, DISCONNECTED
from firmware.crypto import p256
from firmware.crypto.board import BoardCrypto, PrivateKey
from firmware.devices import esme_gbcs as G
from firmware.devices.esme import Esme
from firmware.gbcs import codes, envelope, security
from firmware.gbcs.anchors import TrustAnchors
from firmware.gbcs.device_security import DeviceSecurity
from firmware.sim.clock import SteppedClock

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "vectors" / "gbcs"
RTDS = sorted((VECTORS / "rtds-4.5.0").glob("*/*.HEX"))
KEYSTORE = KeyStore(VECTORS / "keystore")
ACB = bytes.fromhex("90B3D51F30000002")
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME_EUI = bytes.fromhex("00DB1234567890A0")

HOST = HostCrypto()
BOARD = BoardCrypto()
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.sampled_from([1, 2, 3, 16, p256.N - 2, p256.N - 1]),
                    st.integers(min_value=1, max_value=p256.N - 1))


def _host_key(d):
    return ec.derive_private_key(d, ec.SECP256R1())


def _scalar(host_key):
    return host_key.private_numbers().private_value


def _raw(der):
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# -- properties ----------------------------------------------------------------------------------

@SETTINGS
@given(scalars, scalars)
def test_ecdh_agrees(a, b):
    peer = public_xy(_host_key(b).public_key())
    # a fresh HostCrypto: its cache is keyed by id(private_key), and the short-lived key
    # objects made here reuse ids (a stale secret would come back)
    assert BOARD.ecdh(a, peer) == HostCrypto().ecdh(_host_key(a), peer)
    assert PrivateKey(a).public_xy == public_xy(_host_key(a).public_key())


@SETTINGS
@given(st.binary(min_size=64, max_size=64))
def test_both_refuse_the_same_non_points(xy):
    def refuses(crypto, key):
        try:
            crypto.ecdh(key, xy)
        except ValueError:
            return True
        return False
    assert refuses(BOARD, 7) == refuses(HostCrypto(), _host_key(7))


@SETTINGS
@given(st.binary(min_size=64, max_size=64), st.binary(max_size=64))
def test_off_curve_points_never_verify(xy, data):
    x = int.from_bytes(xy[:32], "big")
    y = int.from_bytes(xy[32:], "big")
    signature = BOARD.ecdsa_sign(5, data)
    if not p256.is_on_curve(x, y):
        assert not BOARD.ecdsa_verify(xy, data, signature)


@SETTINGS
@given(scalars, st.binary(max_size=300))
def test_signatures_cross_verify_and_match_openssl_deterministic(d, data):
    key = _host_key(d)
    public = public_xy(key.public_key())
    ours = BOARD.ecdsa_sign(d, data)
    assert ours == _raw(key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))
    assert HOST.ecdsa_verify(public, data, ours)
    theirs = HOST.ecdsa_sign(key, data)                       # random nonce
    assert BOARD.ecdsa_verify(public, data, theirs)
    assert not BOARD.ecdsa_verify(public, data + b"\x00", theirs)
    bent = bytearray(theirs)
    bent[d % 64] ^= 1 << (d % 8)
    assert not BOARD.ecdsa_verify(public, data, bytes(bent))
    assert not HOST.ecdsa_verify(public, data, bytes(bent))


@SETTINGS
@given(st.binary(min_size=64, max_size=64), st.binary(min_size=1, max_size=40))
def test_arbitrary_signature_bytes_get_the_same_verdict(signature, data):
    public = public_xy(_host_key(11).public_key())
    assert BOARD.ecdsa_verify(public, data, signature) == HOST.ecdsa_verify(public, data,
                                                                           signature)


keys = st.binary(min_size=16, max_size=16)
ivs = st.binary(min_size=12, max_size=12)


@SETTINGS
@given(keys, ivs, st.binary(max_size=300), st.binary(max_size=100))
def test_gcm_and_gmac_agree(key, iv, plaintext, aad):
    sealed = BOARD.gcm_encrypt(key, iv, plaintext, aad)
    assert sealed == HOST.gcm_encrypt(key, iv, plaintext, aad)
    ciphertext, tag = sealed
    for length in (12, 16):
        assert BOARD.gcm_decrypt(key, iv, ciphertext, aad, tag[:length]) == plaintext
        assert HOST.gcm_decrypt(key, iv, ciphertext, aad, tag[:length]) == plaintext
    assert BOARD.gmac(key, iv, aad) == HOST.gmac(key, iv, aad)


@SETTINGS
@given(keys, ivs, st.binary(min_size=1, max_size=100), st.binary(max_size=40),
       st.integers(min_value=0, max_value=10**6))
def test_both_refuse_the_same_damaged_gcm(key, iv, plaintext, aad, where):
    ciphertext, tag = HOST.gcm_encrypt(key, iv, plaintext, aad)
    damaged = bytearray(ciphertext + tag[:12])
    damaged[where % len(damaged)] ^= 1 << (where % 8)
    body, short_tag = bytes(damaged[:-12]), bytes(damaged[-12:])
    for crypto in (BOARD, HOST):
        try:
            crypto.gcm_decrypt(key, iv, body, aad, short_tag)
        except ValueError:
            continue
        raise AssertionError("%s accepted a damaged message" % type(crypto).__name__)


# -- RTDS ----------------------------------------------------------------------------------------

def _mac_parties(message):
    """As tests/emulator/test_gbcs_rtds.py: ACB x device for commands, recipient x
    originator for responses and alerts; None where RTDS lacks the private key."""
    if message.cra_flag == envelope.CRA_COMMAND:
        private, peer = KEYSTORE.private_key(ACB, "ka"), KEYSTORE.public_key(message.recipient, "ka")
    else:
        private = KEYSTORE.private_key(message.recipient, "ka")
        peer = KEYSTORE.public_key(message.originator, "ka")
    return None if private is None or peer is None else (private, peer)


def test_every_rtds_signature_and_mac_the_host_verifies_the_board_verifies():
    signatures = macs = 0
    disagreements = []
    for path in RTDS:
        message = envelope.parse(bytes.fromhex(path.read_text().strip()))
        if message.signature is not None:
            public = KEYSTORE.public_key(message.originator, "ds")
            if public is not None and security.verify_signature(HOST, public, message):
                signatures += 1
                if not security.verify_signature(BOARD, public, message):
                    disagreements.append("%s: signature" % path.name)
        if message.mac_protected:
            parties = _mac_parties(message)
            if parties is not None and security.verify_mac(HOST, HOST.ecdh(*parties), message):
                macs += 1
                secret = BOARD.ecdh(_scalar(parties[0]), parties[1])
                if not security.verify_mac(BOARD, secret, message):
                    disagreements.append("%s: MAC" % path.name)
    assert not disagreements, disagreements
    # the counts test_gbcs_rtds.py establishes for the host
    assert signatures >= 241 and macs >= 386, (signatures, macs)


# -- the ESME's GBCS port on the board's crypto -------------------------------------------------

class BoardPremise:
    """An ESME whose DeviceSecurity and EsmeGbcs run on BoardCrypto with integer private
    keys; the supplier and the DCC (ACB) build and protect commands with HostCrypto."""

    def __init__(self):
        authority = smki.TestSmki(seed=33)
        authority.organisation(SUPPLIER, smki.ROLE_SUPPLIER, "SUPPLIER A")
        authority.organisation(ACB, smki.ROLE_ACB, "DCC")
        authority.device(ESME_EUI)
        self.org = authority.organisations
        self.device = authority.devices[ESME_EUI]
        anchors = TrustAnchors()
        anchors.set(codes.ROLE_SUPPLIER, codes.CELL_MANAGEMENT, SUPPLIER,
                    ds_public=self.org[SUPPLIER]["ds"].public_xy,
                    ka_public=self.org[SUPPLIER]["ka"].public_xy)
        anchors.set(codes.ROLE_ACB, codes.CELL_MANAGEMENT, ACB,
                    ds_public=self.org[ACB]["ds"].public_xy,
                    ka_public=self.org[ACB]["ka"].public_xy)
        self.crypto = BoardCrypto()
        self.security = DeviceSecurity(
            ESME_EUI, PrivateKey(_scalar(self.device["ds"].private_key)),
            PrivateKey(_scalar(self.device["ka"].private_key)), self.crypto, anchors)
        profile = load_profile("esme-single-phase")
        profile["objects"]["hh_profile"]["depth"] = 200
        start = profile["clock"]["start"]
        clock = SteppedClock(start)
        self.esme = Esme(profile, clock, seed=5)
        self.gbcs = G.EsmeGbcs(self.esme, self.security, self.crypto)
        self.now = start + 2 * 86400
        clock.set(self.now)
        self.esme.advance(self.now)
        self.counter = 0x2000

    def command(self, use_case):
        self.counter += 1
        uc = USE_CASE_BUILDERS[use_case]
        ctx = BuildContext(self.counter, SUPPLIER, ESME_EUI, self.now, HOST,
                           self.org[SUPPLIER]["ka"].private_key, self.device["ka"].public_xy)
        message = envelope.GbcsMessage(envelope.CRA_COMMAND, self.counter, SUPPLIER, ESME_EUI,
                                       uc.message_code, uc.build({}, ctx))
        if uc.critical:
            security.sign(HOST, self.org[SUPPLIER]["ds"].private_key, message)
        shared = HOST.ecdh(self.org[ACB]["ka"].private_key, self.device["ka"].public_xy)
        security.protect_mac(HOST, shared, message)
        return message.encode(), ctx

    def run(self, use_case):
        data, ctx = self.command(use_case)
        out = self.gbcs.receive_gbcs(data, self.now)
        assert len(out) == 1, (use_case, out)
        reply = envelope.parse(out[0])
        assert reply.cra_flag == envelope.CRA_RESPONSE and reply.originator_counter == ctx.counter
        if USE_CASE_BUILDERS[use_case].critical:
            assert security.verify_signature(HOST, self.device["ds"].public_xy, reply)
        else:
            shared = HOST.ecdh(self.org[SUPPLIER]["ka"].private_key, self.device["ka"].public_xy)
            assert security.verify_mac(HOST, shared, reply)
        return USE_CASE_BUILDERS[use_case].read_response(reply.payload, ctx)


def test_esme_gbcs_on_board_crypto_answers_signed_and_macd_commands():
    p = BoardPremise()
    assert p.esme.supply_state == CONNECTED
    fields = p.run("ECS43")                       # critical: signature + MAC in, signed out
    assert fields["ok"] and p.esme.supply_state == DISCONNECTED
    fields = p.run("ECS17b")                      # MAC'd, registers GCM-encrypted by the board
    assert fields["ok"] and fields["import_wh"] == p.esme.import_register.value[1]
    fields = p.run("ECS45")
    assert fields["supply_state"] == DISCONNECTED


def test_esme_gbcs_on_board_crypto_refuses_a_forged_signature():
    p = BoardPremise()
    data, _ = p.command("ECS43")
    message = envelope.parse(data)
    rogue = smki.TestSmki(seed=404).derive_key("rogue-ds")
    security.sign(HOST, rogue, message)
    security.protect_mac(HOST, HOST.ecdh(p.org[ACB]["ka"].private_key,
                                         p.device["ka"].public_xy), message)
    out = p.gbcs.receive_gbcs(message.encode(), p.now)
    assert p.esme.supply_state == CONNECTED
    assert len(out) == 1
    alert = envelope.parse(out[0])
    assert alert.cra_flag == envelope.CRA_ALERT
    assert security.verify_signature(HOST, p.device["ds"].public_xy, alert)
