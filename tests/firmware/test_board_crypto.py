# The board's crypto (firmware/crypto) on known answers, under CPython and MicroPython:
# - ECDSA P-256/SHA-256 with deterministic nonces: RFC 6979 appendix A.2.5 ("sample", "test");
# - ECDH: NIST CAVS 14.1 ECC CDH primitive test vectors (KAS_ECC_CDH_PrimitiveTest.txt),
#   P-256 COUNT = 0;
# - AES-128-GCM: McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1-4;
# - GBCS clause 18.4 worked example (tests/vectors/gbcs/README.md): ECDH secret, derived
#   key, MAC and the supplier's signature of the ECS04b command.

from binascii import hexlify, unhexlify

from firmware.crypto import gcm, p256
from firmware.crypto.board import BoardCrypto, PrivateKey
from firmware.gbcs import envelope, security


def h(text):
    return unhexlify(text.replace(" ", ""))


CRYPTO = BoardCrypto()

# RFC 6979 A.2.5 (P-256)
RFC_D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC_PUBLIC = h("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
               "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")
RFC_SIGNATURES = (
    (b"sample", h("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
                  "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")),
    (b"test", h("F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367"
                "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083")),
)

# CAVS 14.1 ECC CDH, [P-256] COUNT = 0
CDH_PEER = h("700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287"
             "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac")
CDH_D = 0x7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534
CDH_PUBLIC = h("ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b230"
               "28af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141")
CDH_Z = h("46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b")

# GBCS 18.4
GBCS_MESSAGE = h(
    "DD00000000000081A91100000000DF0901000000000000000108123456789ABCDEF008FFFFFFFFFFFFFFFE"
    "000200B335D92000000100030300700000130A00FF020300700000130A01FF020300700000130A02FF0203"
    "0500000000050000000005000000004059045AB0F554622B0360340B9D87B5A23ED5723B41DE3F206E58CD"
    "D10F915B9FE2E12E2DA3632478A8DF678E418895869AC1E55318CCE04D120D2D6B44DC167B5D832D15B57A"
    "56D620F198B3")
GBCS_SUPPLIER_DS_PUBLIC = h(
    "76628E1C84EF7935548AE5D62C7BB3AD28964CF794F0387A697EEC19CDD98F46"
    "0A4D5E19087EF7216ED89C29831A6EE838C8DE88EF34F11D3F41F36D80B2A5D5")
GBCS_SUPPLIER_DS_PRIVATE = 0x3A6B2EAA0D9F25A9E455983FEB5BB947528121911BF3B76BE5661C89DBF24B26
GBCS_ACB_KA_PRIVATE = 0xE4A6CFB431471CFCAE491FD566D19C87082CF9FA7722D7FA24B2B3F5669DBEFB
GBCS_DEVICE_KA_PUBLIC = h(
    "2DB45A3F21889438B42C8F464C75292BACF5FDDB5DA0B492501B299CBFE92D8F"
    "DB90FC8FF4026129838B1BCAD1402CAE47FE7D8084E409A41AFCE16D63579C5F")
GBCS_SECRET = h("9aacf2e6d51bd5ff8f37bf368019a691cb5b2fcb7b5f030a00063647b20e13fe")
GBCS_KEY = h("859b846a24e1ea70a168409a1180676b")

# McGrew & Viega test cases 1-4 (AES-128): key, IV, plaintext, AAD, ciphertext, tag
MV_KEY = h("feffe9928665731c6d6a8f9467308308")
MV_IV = h("cafebabefacedbaddecaf888")
MV_PLAIN = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
             "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
MV_CIPHER = h("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
              "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
MV_AAD = h("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_CASES = (
    (bytes(16), bytes(12), b"", b"", b"", h("58e2fccefa7e3061367f1d57a4e7455a")),
    (bytes(16), bytes(12), bytes(16), b"", h("0388dace60b6a392f328c2b971b2fe78"),
     h("ab6e47d42cec13bdf53a67b21257bddf")),
    (MV_KEY, MV_IV, MV_PLAIN, b"", MV_CIPHER, h("4d5c2af327cd64a62cf35abd2ba6fab4")),
    (MV_KEY, MV_IV, MV_PLAIN[:60], MV_AAD, MV_CIPHER[:60], h("5bc94fbc3221a5db94fae95ae7121a47")),
)


def _raises_value_error(function, *args):
    try:
        function(*args)
    except ValueError:
        return True
    return False


# -- P-256 ---------------------------------------------------------------------------------------

def test_public_key_of_the_rfc6979_and_cavs_private_keys():
    assert PrivateKey(RFC_D).public_xy == RFC_PUBLIC
    assert p256.encode_point(p256.public_key(CDH_D)) == CDH_PUBLIC


def test_small_and_edge_scalars_agree_with_repeated_addition():
    g = (p256.GX, p256.GY)
    acc = g
    for k in range(2, 20):
        acc = p256._to_affine(*p256._add_affine(acc[0], acc[1], 1, p256.GX, p256.GY))
        assert p256.public_key(k) == acc, k
    x, y = p256.public_key(p256.N - 1)                  # (n-1)G = -G
    assert (x, y) == (p256.GX, p256.P - p256.GY)
    assert p256.public_key(p256.N - 2) == (p256.public_key(2)[0], p256.P - p256.public_key(2)[1])


def test_rfc6979_signatures_are_reproduced_and_verify():
    for message, signature in RFC_SIGNATURES:
        assert CRYPTO.ecdsa_sign(RFC_D, message) == signature, message
        assert CRYPTO.ecdsa_sign(PrivateKey(RFC_D), message) == signature
        assert CRYPTO.ecdsa_verify(RFC_PUBLIC, message, signature)


def test_verify_refuses_wrong_message_key_and_malformed_signatures():
    message, signature = RFC_SIGNATURES[0]
    assert not CRYPTO.ecdsa_verify(RFC_PUBLIC, b"samplf", signature)
    assert not CRYPTO.ecdsa_verify(CDH_PUBLIC, message, signature)
    flipped = bytearray(signature)
    flipped[63] ^= 1
    assert not CRYPTO.ecdsa_verify(RFC_PUBLIC, message, bytes(flipped))
    n = p256.N.to_bytes(32, "big")
    r, s = signature[:32], signature[32:]
    for bad in (bytes(32) + s, r + bytes(32), n + s, r + n, signature[:63], signature + b"\x00"):
        assert not CRYPTO.ecdsa_verify(RFC_PUBLIC, message, bad)
    # s and n - s: both verify mathematically (no low-s rule in GBCS or FIPS 186-4)
    s_int = int.from_bytes(s, "big")
    assert CRYPTO.ecdsa_verify(RFC_PUBLIC, message, r + (p256.N - s_int).to_bytes(32, "big"))


def test_ecdh_cavs_vector_and_symmetry():
    assert CRYPTO.ecdh(CDH_D, CDH_PEER) == CDH_Z
    assert CRYPTO.ecdh(PrivateKey(CDH_D), CDH_PEER) == CDH_Z      # cached path, key object
    assert CRYPTO.ecdh(RFC_D, CDH_PUBLIC) == CRYPTO.ecdh(CDH_D, RFC_PUBLIC)


def _small_x_point():
    """A curve point with x < 2^224, so x + p still fits 32 bytes (p = 3 mod 4: the
    square root is a power)."""
    for x in range(1, 100):
        rhs = (x * x * x - 3 * x + p256.B) % p256.P
        y = pow(rhs, (p256.P + 1) // 4, p256.P)
        if y * y % p256.P == rhs:
            return x, y
    raise AssertionError("no point with a small x")


def test_invalid_points_are_rejected():
    x, y = CDH_PEER[:32], CDH_PEER[32:]
    y_off = bytearray(y)
    y_off[31] ^= 1                                                  # (x, y^1): off the curve
    p = p256.P.to_bytes(32, "big")
    bad_points = (x + bytes(y_off), bytes(64), p + y, x + p, CDH_PEER[:63], CDH_PEER + b"\x00",
                  b"\xff" * 64)
    for point in bad_points:
        assert _raises_value_error(CRYPTO.ecdh, CDH_D, point), hexlify(point)
        assert not CRYPTO.ecdsa_verify(point, b"sample", RFC_SIGNATURES[0][1])
    # a coordinate not reduced mod p names the same residue but is not a valid encoding
    sx, sy = _small_x_point()
    assert len(CRYPTO.ecdh(CDH_D, p256.encode_point((sx, sy)))) == 32
    unreduced = (sx + p256.P).to_bytes(32, "big") + sy.to_bytes(32, "big")
    assert _raises_value_error(CRYPTO.ecdh, CDH_D, unreduced)
    assert not p256.is_on_curve(3, 5)


def test_private_scalars_out_of_range_are_refused():
    for d in (0, p256.N, p256.N + 1, -1):
        assert _raises_value_error(PrivateKey, d)
        assert _raises_value_error(CRYPTO.ecdh, d, CDH_PEER)
        assert _raises_value_error(CRYPTO.ecdsa_sign, d, b"x")


def test_regular_recoding_is_the_scalar_and_always_the_same_length():
    for k in (1, 3, 0x7FF, p256.N - 2, p256.N + 2, 2 * p256.N - 1, 0xAAAA << 200 | 1):
        digits = p256._regular_digits(k)
        assert len(digits) == p256.REGULAR_DIGITS
        assert all(d & 1 and -16 < d < 16 for d in digits)
        assert sum(d << (4 * i) for i, d in enumerate(digits)) == k


# -- GBCS 18.4 -----------------------------------------------------------------------------------

def test_gbcs_18_4_secret_key_mac_and_signature():
    assert CRYPTO.ecdh(GBCS_ACB_KA_PRIVATE, GBCS_DEVICE_KA_PUBLIC) == GBCS_SECRET
    message = envelope.parse(GBCS_MESSAGE)
    assert security.mac_key(CRYPTO, GBCS_SECRET, message) == GBCS_KEY
    assert security.verify_mac(CRYPTO, GBCS_SECRET, message)
    assert PrivateKey(GBCS_SUPPLIER_DS_PRIVATE).public_xy == GBCS_SUPPLIER_DS_PUBLIC
    assert security.verify_signature(CRYPTO, GBCS_SUPPLIER_DS_PUBLIC, message)
    # the board re-protects the same message: a signature of its own that verifies, and
    # the same MAC bytes (GMAC is deterministic)
    again = envelope.parse(GBCS_MESSAGE)
    security.sign(CRYPTO, GBCS_SUPPLIER_DS_PRIVATE, again)
    assert security.verify_signature(CRYPTO, GBCS_SUPPLIER_DS_PUBLIC, again)
    mac = message.mac
    security.protect_mac(CRYPTO, GBCS_SECRET, message)
    assert message.mac == mac and message.encode() == GBCS_MESSAGE


def test_gbcs_18_4_tampering_fails_the_mac():
    raw = bytearray(GBCS_MESSAGE)
    raw[-20] ^= 0x80                                       # inside the signature
    message = envelope.parse(bytes(raw))
    assert not security.verify_mac(CRYPTO, GBCS_SECRET, message)
    assert not security.verify_signature(CRYPTO, GBCS_SUPPLIER_DS_PUBLIC, message)


# -- AES-GCM -------------------------------------------------------------------------------------

def test_mcgrew_viega_test_cases_1_to_4():
    for key, iv, plain, aad, cipher, tag in GCM_CASES:
        assert CRYPTO.gcm_encrypt(key, iv, plain, aad) == (cipher, tag)
        assert CRYPTO.gcm_decrypt(key, iv, cipher, aad, tag) == plain
        assert CRYPTO.gcm_decrypt(key, iv, cipher, aad, tag[:12]) == plain   # GBCS length
        if not plain:
            assert CRYPTO.gmac(key, iv, aad) == tag


def test_gmac_is_the_tag_of_no_plaintext():
    key, iv, _, aad, _, _ = GCM_CASES[3]
    assert CRYPTO.gmac(key, iv, aad) == CRYPTO.gcm_encrypt(key, iv, b"", aad)[1]
    assert CRYPTO.gmac(key, iv, aad) != CRYPTO.gmac(key, iv, aad + b"\x00")


def test_bad_tags_raise_value_error():
    key, iv, _, aad, cipher, tag = GCM_CASES[3]
    for i in (0, 11, 15):
        bad = bytearray(tag)
        bad[i] ^= 1
        assert _raises_value_error(CRYPTO.gcm_decrypt, key, iv, cipher, aad, bytes(bad)), i
    assert _raises_value_error(CRYPTO.gcm_decrypt, key, iv, cipher, aad, tag[:11])  # too short
    assert _raises_value_error(CRYPTO.gcm_decrypt, key, iv, cipher, aad + b"x", tag)
    flipped = bytearray(cipher)
    flipped[0] ^= 1
    assert _raises_value_error(CRYPTO.gcm_decrypt, key, iv, bytes(flipped), aad, tag)
    assert _raises_value_error(CRYPTO.gcm_encrypt, key, iv + b"\x00", b"", b"")  # 96-bit IV only


def test_ghash_table_matches_bitwise_multiplication():
    def slow(x, y):                                 # SP 800-38D algorithm 1, bit by bit
        z, v = 0, y
        for i in range(127, -1, -1):
            if (x >> i) & 1:
                z ^= v
            v = (v >> 1) ^ (0xE1 << 120 if v & 1 else 0)
        return z
    h_ = int.from_bytes(h("66e94bd4ef8a2c3b884cfa59ca342b2e"), "big")
    table = gcm.ghash_table(h_)
    for x in (1, 1 << 127, 0x0388dace60b6a392f328c2b971b2fe78, (1 << 128) - 1, 0x1234 << 60):
        assert gcm._multiply(x, table) == slow(x, h_), hex(x)


def test_counter_wraps_in_its_low_32_bits():
    # inc32 (SP 800-38D 6.2): J0 = IV || 1, so from ffffffff the next block counter is 0
    aes = gcm._ecb(MV_KEY)
    stream = gcm._keystream(aes, MV_IV[:12] + b"\xff\xff\xff\xfe", 48)
    blocks = aes.encrypt(MV_IV + b"\xff\xff\xff\xff" + MV_IV + bytes(4) + MV_IV + b"\x00\x00\x00\x01")
    assert stream == blocks
