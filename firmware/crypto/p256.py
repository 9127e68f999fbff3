"""NIST P-256 (secp256r1) in pure Python integers: ECDH and ECDSA-SHA256 for a board.

Curve and base point: FIPS 186-4 D.1.2.3 (SEC 2 2.4.2). Points inside the arithmetic are
Jacobian (X, Y, Z) with x = X/Z^2, y = Y/Z^3 and Z = 0 the point at infinity; tables are
affine (x, y). Formulas for a = -3 from the Explicit-Formulas Database: dbl-2001-b
(3M + 5S) and madd-2007-bl (7M + 4S).

Scalar multiplication:
- secret scalars (ECDH, the signing nonce): a regular fixed window of 4 bits with signed
  odd digits (Joye-Tunstall recoding: every digit odd in -15..15, so every window is
  4 doublings and exactly 1 addition, no skipped window); an even scalar k is replaced
  by k + n (same point, odd), so the digit count and operation sequence are the same
  for every scalar in [1, n-1];
- public scalars (ECDSA verify): interleaved width-5 NAF of u1 (on G) and u2 (on Q).

What is and is not constant-time. The control flow of the secret-scalar multiplication
does not depend on the scalar (same number of doublings, additions and table reads per
window). It is NOT constant-time at the machine level: Python integers take time that
depends on their magnitude (a value that happens to be small is faster), `%` and `pow`
are variable-time, the table read `table[digit]` is a secret-indexed memory access, and
the exceptional cases of the addition formula (the accumulator equal to plus or minus
the table point) take a branch that only degenerate scalars reach. On a board this
leaks through timing and power to an attacker with a probe on the meter; a production
meter keeps its keys in a secure element. The RFC 6979 nonce loop repeats on a
probability of about 2^-32, which depends on the key and message, not on timing.

Field inversion is Fermat (pow(z, p - 2, p)); both runtimes have three-argument pow.

No `@micropython.native` or `viper`: measured on the unix port (x64), the native emitter
changed ECDH, sign and verify by less than the run-to-run noise (best of 8: ECDH 5.18 ms
native vs 5.06 ms bytecode), because the time is spent inside the big-integer routines
(mpz multiply and modulo), which are C either way; viper cannot hold 256-bit integers.
Left out, the modules stay plain bytecode, which mpy-cross compiles for any board without
-march.
"""

import hashlib

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

WINDOW = 4                       # secret scalars: 4-bit signed odd digits
REGULAR_DIGITS = 65              # covers every odd scalar below 2n < 2^257
WNAF_WIDTH = 5                   # public scalars
TABLE_SIZE = 8                   # odd multiples 1P, 3P, .., 15P serve both


class P256Error(ValueError):
    """A point or scalar that P-256 must refuse (off the curve, out of range)."""


def _bytes_to_int(b):
    return int.from_bytes(bytes(b), "big")


def _int_to_bytes32(n):
    return n.to_bytes(32, "big")


# -- points ------------------------------------------------------------------------------------

def is_on_curve(x, y):
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def decode_point(xy):
    """(x, y) from the 64-byte x||y GBCS carries; P256Error if it is not a curve point.

    The curve has cofactor 1, so a point on the curve is in the prime-order group: this
    is the whole of SP 800-56A 5.6.2.3.3 public-key validation (the all-zero encoding is
    not on the curve, b != 0, so infinity cannot be passed in).
    """
    if len(xy) != 64:
        raise P256Error("public key must be 64 bytes x||y, got %d" % len(xy))
    x = _bytes_to_int(xy[:32])
    y = _bytes_to_int(xy[32:])
    if not is_on_curve(x, y):
        raise P256Error("point is not on P-256")
    return x, y


def encode_point(point):
    return _int_to_bytes32(point[0]) + _int_to_bytes32(point[1])


def _double(X, Y, Z):
    """2(X, Y, Z), dbl-2001-b for a = -3. Doubling infinity gives Z = 0 again."""
    delta = Z * Z % P
    gamma = Y * Y % P
    beta = X * gamma % P
    alpha = 3 * (X - delta) * (X + delta) % P
    X3 = (alpha * alpha - 8 * beta) % P
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % P
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % P
    return X3, Y3, Z3


def _add_affine(X1, Y1, Z1, x2, y2):
    """(X1, Y1, Z1) + (x2, y2, 1), madd-2007-bl, with its exceptional cases."""
    if Z1 == 0:
        return x2, y2, 1
    Z1Z1 = Z1 * Z1 % P
    U2 = x2 * Z1Z1 % P
    S2 = y2 * Z1 * Z1Z1 % P
    H = (U2 - X1) % P
    r = 2 * (S2 - Y1) % P
    if H == 0:
        if r == 0:
            return _double(X1, Y1, Z1)    # the same point
        return 0, 1, 0                    # opposite points
    HH = H * H % P
    I = 4 * HH
    J = H * I % P
    V = X1 * I % P
    X3 = (r * r - J - 2 * V) % P
    Y3 = (r * (V - X3) - 2 * Y1 * J) % P
    Z3 = ((Z1 + H) * (Z1 + H) - Z1Z1 - HH) % P
    return X3, Y3, Z3


def _to_affine(X, Y, Z):
    if Z == 0:
        return None
    zi = pow(Z, P - 2, P)
    zi2 = zi * zi % P
    return X * zi2 % P, Y * zi2 * zi % P


def _normalise(points):
    """Affine forms of Jacobian points (none at infinity) with one inversion
    (Montgomery's simultaneous inversion)."""
    prefix = []
    acc = 1
    for X, Y, Z in points:
        prefix.append(acc)
        acc = acc * Z % P
    inverse = pow(acc, P - 2, P)
    out = [None] * len(points)
    for i in range(len(points) - 1, -1, -1):
        X, Y, Z = points[i]
        zi = inverse * prefix[i] % P
        inverse = inverse * Z % P
        zi2 = zi * zi % P
        out[i] = (X * zi2 % P, Y * zi2 * zi % P)
    return out


def odd_multiples(point):
    """[1P, 3P, 5P, .., 15P] affine. For a point of prime order n none is infinity."""
    x, y = point
    lam = (3 * x * x - 3) * pow(2 * y, P - 2, P) % P     # 2P in affine, for madd
    x2 = (lam * lam - 2 * x) % P
    y2 = (lam * (x - x2) - y) % P
    jacobian = [(x, y, 1)]
    for _ in range(TABLE_SIZE - 1):
        X, Y, Z = jacobian[-1]
        jacobian.append(_add_affine(X, Y, Z, x2, y2))
    return _normalise(jacobian)


_G_TABLE = []


def base_table():
    """Odd multiples of G, computed once on first use (about 1 KB of integers)."""
    if not _G_TABLE:
        _G_TABLE.extend(odd_multiples((GX, GY)))
    return _G_TABLE


# -- scalar multiplication -----------------------------------------------------------------------

def _regular_digits(k):
    """Signed odd 4-bit digits of an odd k < 2^257, least significant first, always
    REGULAR_DIGITS of them, the last positive (Joye-Tunstall regular recoding)."""
    digits = [0] * REGULAR_DIGITS
    for i in range(REGULAR_DIGITS - 1):
        u = (k & 31) - 16
        digits[i] = u
        k = (k - u) >> WINDOW
    digits[REGULAR_DIGITS - 1] = k
    return digits


def _ladder(digits, table):
    """Sum of digits[i] * 16^i * T where table holds the odd multiples of T: the same
    4 doublings and 1 addition per window whatever the digits."""
    top = digits[REGULAR_DIGITS - 1]
    x, y = table[top >> 1]
    X, Y, Z = x, y, 1
    for i in range(REGULAR_DIGITS - 2, -1, -1):
        X, Y, Z = _double(X, Y, Z)
        X, Y, Z = _double(X, Y, Z)
        X, Y, Z = _double(X, Y, Z)
        X, Y, Z = _double(X, Y, Z)
        d = digits[i]
        negative = (d >> 8) & 1                 # d < 0, without a branch
        magnitude = (d ^ -negative) + negative  # |d|
        x, y = table[magnitude >> 1]
        y = (y, P - y)[negative]
        X, Y, Z = _add_affine(X, Y, Z, x, y)
    return X, Y, Z


def _check_scalar(k):
    if not (1 <= k < N):
        raise P256Error("scalar out of range [1, n-1]")


def multiply_secret(k, table):
    """k * T (Jacobian) for a secret k in [1, n-1]; table = odd_multiples(T)."""
    _check_scalar(k)
    odd = k + N * (1 - (k & 1))               # k or k + n: the same point, always odd
    return _ladder(_regular_digits(odd), table)


def scalar_multiply(k, point):
    """k * (x, y) in affine, or None for infinity."""
    return _to_affine(*multiply_secret(k, odd_multiples(point)))


def _wnaf(k, width):
    """Width-w NAF digits of k >= 0, least significant first (digits odd, |d| < 2^(w-1))."""
    digits = []
    full = 1 << width
    half = full >> 1
    while k:
        if k & 1:
            d = k & (full - 1)
            if d >= half:
                d -= full
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


def _double_multiply(u1, u2, q_table):
    """u1*G + u2*Q for public u1, u2 (Jacobian): Shamir's trick over width-5 NAFs."""
    g_table = base_table()
    a = _wnaf(u1, WNAF_WIDTH)
    b = _wnaf(u2, WNAF_WIDTH)
    X, Y, Z = 0, 1, 0
    for i in range(max(len(a), len(b)) - 1, -1, -1):
        X, Y, Z = _double(X, Y, Z)
        for digits, table in ((a, g_table), (b, q_table)):
            if i < len(digits) and digits[i]:
                d = digits[i]
                x, y = table[(d if d > 0 else -d) >> 1]
                X, Y, Z = _add_affine(X, Y, Z, x, y if d > 0 else P - y)
    return X, Y, Z


# -- keys, ECDH, ECDSA ---------------------------------------------------------------------------

def public_key(d):
    """The public point of private scalar d, as (x, y)."""
    return _to_affine(*multiply_secret(d, base_table()))


def ecdh(d, peer_xy):
    """SP 800-56A 5.7.1.2 shared secret Z: the x of d * Q, 32 bytes; the peer's key is
    validated first (an off-curve point raises P256Error, never a result)."""
    point = scalar_multiply(d, decode_point(peer_xy))
    if point is None:
        raise P256Error("shared point is infinity")
    return _int_to_bytes32(point[0])


def _hmac_sha256(key, data):
    """RFC 2104 HMAC with a 32-byte key (shorter than the 64-byte block)."""
    inner = bytearray(64)
    outer = bytearray(64)
    for i in range(64):
        k = key[i] if i < len(key) else 0
        inner[i] = k ^ 0x36
        outer[i] = k ^ 0x5C
    return hashlib.sha256(bytes(outer) + hashlib.sha256(bytes(inner) + data).digest()).digest()


def _hash_to_int(digest):
    """bits2int of SHA-256 for a 256-bit n: the whole digest (FIPS 186-4 6.4)."""
    return _bytes_to_int(digest)


def rfc6979_nonces(d, digest):
    """Candidate nonces k for (d, h) by RFC 6979 3.2 with HMAC-SHA256, in order."""
    x = _int_to_bytes32(d)
    h = _int_to_bytes32(_hash_to_int(digest) % N)          # bits2octets
    V = b"\x01" * 32
    K = b"\x00" * 32
    K = _hmac_sha256(K, V + b"\x00" + x + h)
    V = _hmac_sha256(K, V)
    K = _hmac_sha256(K, V + b"\x01" + x + h)
    V = _hmac_sha256(K, V)
    while True:
        V = _hmac_sha256(K, V)
        k = _bytes_to_int(V)
        if 1 <= k < N:
            yield k
        K = _hmac_sha256(K, V + b"\x00")
        V = _hmac_sha256(K, V)


def sign_digest(d, digest):
    """ECDSA (FIPS 186-4 6.4) with the RFC 6979 deterministic nonce: 64 bytes r||s."""
    _check_scalar(d)
    e = _hash_to_int(digest) % N
    for k in rfc6979_nonces(d, digest):
        point = _to_affine(*multiply_secret(k, base_table()))
        r = point[0] % N
        if r == 0:
            continue
        s = pow(k, N - 2, N) * (e + r * d) % N
        if s != 0:
            return _int_to_bytes32(r) + _int_to_bytes32(s)


def sign(d, data):
    return sign_digest(d, hashlib.sha256(bytes(data)).digest())


def verify_digest(public_xy, digest, signature, q_table=None):
    """FIPS 186-4 6.4.2. False for any malformed key or signature (never raises).
    `q_table` is odd_multiples(Q), when the caller keeps one per known key."""
    if len(signature) != 64:
        return False
    r = _bytes_to_int(signature[:32])
    s = _bytes_to_int(signature[32:])
    if not (1 <= r < N and 1 <= s < N):
        return False
    if q_table is None:
        try:
            q_table = odd_multiples(decode_point(public_xy))
        except P256Error:
            return False
    w = pow(s, N - 2, N)
    e = _hash_to_int(digest) % N
    X, Y, Z = _double_multiply(e * w % N, r * w % N, q_table)
    if Z == 0:
        return False
    # x(R) mod n == r without an inversion: X == x * Z^2 for x in {r, r + n} below p
    zz = Z * Z % P
    if X == r * zz % P:
        return True
    return r + N < P and X == (r + N) * zz % P


def verify(public_xy, data, signature, q_table=None):
    return verify_digest(public_xy, hashlib.sha256(bytes(data)).digest(), signature, q_table)
