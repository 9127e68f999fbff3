"""AES-128-GCM and GMAC (NIST SP 800-38D) over an AES-ECB block cipher.

MicroPython's `cryptolib.aes(key, 1)` gives ECB only (MICROPYTHON.md); this module builds
CTR mode and GHASH on it. Only the 96-bit IV is supported (J0 = IV || 0^31 || 1,
SP 800-38D 7.1), which is the one GBCS uses (GBCS 4.3.3: originator EUI-64 || counter).
Tags are 16 bytes out; a received tag may be truncated to 12..16 bytes (GBCS carries 12).

GHASH multiplies by H with Shoup's 4-bit table: 16 multiples of H per key (built in 15
XORs and 3 shifts) and a fixed 16-entry reduction table, so one block is 32 table
steps. Field elements are Python integers holding the block big-endian, so bit 127 is
the coefficient of x^0 (SP 800-38D 6.3); multiplying by x is a right shift, reduced by
R = 0xE1 || 0^120.

Plain bytecode (no viper): a 256-byte GMAC with a new key takes about 0.1 ms on the unix
port, against about 5 ms for the ECDH it follows on a cache miss (benchmarks/board_crypto.py).

Where `cryptolib` is missing (CPython), a small pure-Python AES-128 encryptor
(`_PyAes`, FIPS 197) stands in so the same code is testable on both runtimes.
"""

try:
    import cryptolib

    def _ecb(key):
        return cryptolib.aes(bytes(key), 1)
except ImportError:
    cryptolib = None

    def _ecb(key):
        return _PyAes(bytes(key))

BLOCK = 16
MIN_TAG = 12
_R = 0xE1 << 120
_MASK128 = (1 << 128) - 1


def _reduction_table():
    """_REDUCE[l]: the low nibble l shifted out of a 4-bit right shift, reduced mod the
    GCM polynomial (its bit 3 is x^124, which the shift makes x^128 = R)."""
    table = []
    for low in range(16):
        value = 0
        for k in range(4):
            if low & (8 >> k):
                value ^= _R >> k
        table.append(value)
    return table


_REDUCE = _reduction_table()


def ghash_table(h):
    """[n * H for the 16 nibbles n], nibble bit 3 being x^0."""
    table = [0] * 16
    table[8] = h
    for bit in (4, 2, 1):                     # H * x, H * x^2, H * x^3
        v = table[bit << 1]
        table[bit] = (v >> 1) ^ (_R if v & 1 else 0)
    for n in range(16):
        if n & (n - 1):                       # not a power of two: XOR of its bits
            table[n] = table[n & 8] ^ table[n & 4] ^ table[n & 2] ^ table[n & 1]
    return table


def _multiply(x, table):
    """x * H by Horner over x's nibbles, highest degree (least significant) first."""
    z = 0
    reduce = _REDUCE
    for shift in range(0, 128, 4):
        z = (z >> 4) ^ reduce[z & 15] ^ table[(x >> shift) & 15]
    return z


def _ghash_update(y, table, data):
    """Absorb `data`, zero-padded to whole blocks (SP 800-38D 6.4)."""
    n = len(data)
    for start in range(0, n, BLOCK):
        block = data[start:start + BLOCK]
        if len(block) < BLOCK:
            block = bytes(block) + bytes(BLOCK - len(block))
        y = _multiply(y ^ int.from_bytes(bytes(block), "big"), table)
    return y


def _j0(iv):
    if len(iv) != 12:
        raise ValueError("GCM here takes a 96-bit IV, got %d bytes" % len(iv))
    return bytes(iv) + b"\x00\x00\x00\x01"


def _keystream(aes, j0, length):
    """E(K, inc32^i(J0)) for i = 1.. as one ECB call (SP 800-38D 6.5 GCTR)."""
    blocks = (length + BLOCK - 1) // BLOCK
    if blocks == 0:
        return b""
    prefix = j0[:12]
    counter = int.from_bytes(j0[12:], "big")
    counters = bytearray(blocks * BLOCK)
    for i in range(blocks):
        counters[i * BLOCK:i * BLOCK + 12] = prefix
        counters[i * BLOCK + 12:i * BLOCK + 16] = ((counter + 1 + i) & 0xFFFFFFFF).to_bytes(4, "big")
    return aes.encrypt(bytes(counters))[:length]


def _xor(data, stream):
    n = len(data)
    if n == 0:
        return b""
    value = int.from_bytes(bytes(data), "big") ^ int.from_bytes(bytes(stream[:n]), "big")
    return value.to_bytes(n, "big")


class GcmKey:
    """One AES-128 key: its ECB cipher and GHASH table, for several messages."""

    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("AES-128 key must be 16 bytes")
        self._aes = _ecb(key)
        self._table = ghash_table(int.from_bytes(self._aes.encrypt(bytes(BLOCK)), "big"))

    def _tag(self, j0, aad, ciphertext):
        y = _ghash_update(0, self._table, aad)
        y = _ghash_update(y, self._table, ciphertext)
        lengths = ((len(aad) * 8) << 64) | (len(ciphertext) * 8)
        y = _multiply(y ^ lengths, self._table)
        mask = int.from_bytes(self._aes.encrypt(j0), "big")
        return ((y ^ mask) & _MASK128).to_bytes(16, "big")

    def encrypt(self, iv, plaintext, aad):
        j0 = _j0(iv)
        ciphertext = _xor(plaintext, _keystream(self._aes, j0, len(plaintext)))
        return ciphertext, self._tag(j0, aad, ciphertext)

    def decrypt(self, iv, ciphertext, aad, tag):
        if not (MIN_TAG <= len(tag) <= BLOCK):
            raise ValueError("GCM tag length %d outside 12..16" % len(tag))
        j0 = _j0(iv)
        expected = self._tag(j0, aad, ciphertext)
        if not equal(expected[:len(tag)], tag):
            raise ValueError("GCM tag does not verify")
        return _xor(ciphertext, _keystream(self._aes, j0, len(ciphertext)))


def gmac(key, iv, aad):
    return GcmKey(key)._tag(_j0(iv), aad, b"")


def gcm_encrypt(key, iv, plaintext, aad):
    return GcmKey(key).encrypt(iv, plaintext, aad)


def gcm_decrypt(key, iv, ciphertext, aad, tag):
    return GcmKey(key).decrypt(iv, ciphertext, aad, tag)


def equal(a, b):
    """Constant-time comparison (the time does not depend on where bytes differ)."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


# -- AES-128 encryption in pure Python: only where cryptolib is missing ----------------------

def _xtime(a):
    a <<= 1
    return (a ^ 0x11B) if a & 0x100 else a


def _sbox():
    """FIPS 197 5.1.1: multiplicative inverse in GF(2^8), then the affine map."""
    exp = [0] * 256
    log = [0] * 256
    a = 1
    for i in range(255):
        exp[i] = a
        log[a] = i
        a ^= _xtime(a)                    # multiply by the generator 3
    box = bytearray(256)
    for x in range(256):
        inv = exp[(255 - log[x]) % 255] if x else 0
        s = inv
        for shift in range(1, 5):
            s ^= ((inv << shift) | (inv >> (8 - shift))) & 0xFF
        box[x] = s ^ 0x63
    return bytes(box)


_SBOX = []


class _PyAes:
    """AES-128 ECB encryption (FIPS 197), the cryptolib.aes(key, 1).encrypt shape."""

    def __init__(self, key):
        if not _SBOX:
            _SBOX.append(_sbox())
        self._box = _SBOX[0]
        self._round_keys = self._expand(key)

    def _expand(self, key):
        box = self._box
        words = [list(key[i:i + 4]) for i in range(0, 16, 4)]
        rcon = 1
        for i in range(4, 44):
            t = list(words[i - 1])
            if i % 4 == 0:
                t = [box[t[1]] ^ rcon, box[t[2]], box[t[3]], box[t[0]]]
                rcon = _xtime(rcon)
            words.append([words[i - 4][j] ^ t[j] for j in range(4)])
        keys = []
        for r in range(11):
            keys.append(bytes(words[4 * r] + words[4 * r + 1] + words[4 * r + 2] + words[4 * r + 3]))
        return keys

    def _block(self, block):
        box = self._box
        keys = self._round_keys
        s = [block[i] ^ keys[0][i] for i in range(16)]
        for r in range(1, 11):
            s = [box[b] for b in s]
            # ShiftRows: state is column-major, row i of column c at 4c + i
            s = [s[(i + 4 * (i % 4)) % 16] for i in range(16)]
            if r < 10:
                mixed = []
                for c in range(0, 16, 4):
                    a0, a1, a2, a3 = s[c], s[c + 1], s[c + 2], s[c + 3]
                    t = a0 ^ a1 ^ a2 ^ a3
                    mixed += [a0 ^ t ^ _xtime(a0 ^ a1), a1 ^ t ^ _xtime(a1 ^ a2),
                              a2 ^ t ^ _xtime(a2 ^ a3), a3 ^ t ^ _xtime(a3 ^ a0)]
                s = mixed
            key = keys[r]
            s = [s[i] ^ key[i] for i in range(16)]
        return bytes(s)

    def encrypt(self, data):
        if len(data) % BLOCK:
            raise ValueError("ECB input must be whole blocks")
        out = b""
        for i in range(0, len(data), BLOCK):
            out += self._block(data[i:i + BLOCK])
        return out
