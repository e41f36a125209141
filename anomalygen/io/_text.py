"""Fast text tables for ASCII PCD, GT and OBJ files.

Every value is written as printf would write it with `number_format` ('%.9g' for float32,
'%.17g' for float64, '%d' for integers), so a value read back is the value written.

Why by hand: a build writes ~3,000 files of up to 30k rows, and no library formats a float
array to text in C (np.savetxt and pandas call Python's formatter once per value, ~200 ns
each). Float32 and integer columns are formatted here with numpy array arithmetic into
fixed-width byte slots (`Table`), the same bytes '%.9g' / '%d' give: for |x| in
[1e-4, 1e9), the range '%g' prints without an exponent, x * 10^k (0 <= k <= 12) is exact
in float64 (24 + 28 significand bits), so rounding it to 9 digits with np.rint (half to
even, as Python's correctly rounded formatter does) gives '%.9g''s digits. Every other
value (zero aside: exponent form, nan, inf) and every float64 column goes through '%'.
"""

from __future__ import annotations

import re

import numpy as np

_SIG = 9  # significant digits of '%.9g'
_POW10 = 10.0 ** np.arange(13)  # exact in float64
_IPOW10 = 10 ** np.arange(19, dtype=np.int64)


def number_format(dtype: np.dtype) -> str:
    """printf format that round-trips a value of this dtype exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return "%.9g" if dtype.itemsize <= 4 else "%.17g"
    return "%d"


def _percent_slots(values: np.ndarray, fmt: str, width: int | None = None) -> np.ndarray:
    """(n, width) ascii bytes of fmt % each value, left-aligned, zero-padded (0 = no byte)."""
    enc = [(fmt % v).encode("ascii") for v in values.tolist()]
    width = width or max((len(s) for s in enc), default=1)
    out = np.zeros((len(enc), width), np.uint8)
    for i, s in enumerate(enc):
        out[i, :len(s)] = np.frombuffer(s, np.uint8)
    return out


_QUADS = np.array([f"{i:04d}".encode() for i in range(10_000)]).view("<u4")  # 4 ascii digits as one word
_QUAD_TZ = np.array([4] + [len(f"{i:04d}") - len(f"{i:04d}".rstrip("0")) for i in range(1, 10_000)], np.int64)
# _KEEP[g][d]: the bytes of 4-digit group g (0 = leftmost) to keep when the first d digits of 12 are kept
_KEEP = np.array([[np.frombuffer(bytes(255 if 4 * g + i < d else 0 for i in range(4)), "<u4")[0]
                   for d in range(13)] for g in range(3)], "<u4")


def _quads(q: np.ndarray, groups: int) -> list[np.ndarray]:
    """The base-10,000 digits of non-negative integers < 10^(4 * groups), most significant first."""
    out = []
    for _ in range(groups):
        q, r = np.divmod(q, 10_000)
        out.append(r)
    return out[::-1]


def _digits(q: np.ndarray, width: int) -> np.ndarray:
    """(n, width) ascii digits of non-negative integers < 10^width (width a multiple of 4), zero-filled."""
    d = np.empty((len(q), width // 4), "<u4")
    for g, r in enumerate(_quads(q.astype(np.int64), width // 4)):
        d[:, g] = _QUADS[r]
    return d.view(np.uint8)


def _fraction_digits(frac: np.ndarray) -> np.ndarray:
    """(n, 12) ascii digits of 12-digit fractions, trailing zeros dropped (bytes 0)."""
    r = _quads(frac, 3)
    tz = np.where(r[2] != 0, _QUAD_TZ[r[2]], np.where(r[1] != 0, 4 + _QUAD_TZ[r[1]],
                                                       np.where(r[0] != 0, 8 + _QUAD_TZ[r[0]], 12)))
    d = np.empty((len(frac), 3), "<u4")
    for g in range(3):
        d[:, g] = _QUADS[r[g]] & _KEEP[g][12 - tz]
    return d.view(np.uint8)


_U64 = np.uint64  # shifts of uint64 arrays need uint64 operands on numpy 1.x


def _le_word(bs: bytes) -> int:
    return int.from_bytes(bs.ljust(8, b"\0"), "little")


# a 16-byte slot is two little-endian words (bytes 0-7, 8-15); masks keeping its first n bytes, n <= 9
_KEEP_LO = np.array([_le_word(b"\xff" * min(n, 8)) for n in range(10)], np.uint64)
_KEEP_HI = np.array([_le_word(b"\xff" * max(n - 8, 0)) for n in range(10)], np.uint64)
# [sign]0.[s zeros] of a value in [1e-4, 1) whose leading digit is s + 1 places after the point
_PREFIX = np.array([[_le_word((b"-" if neg else b"\0") + b"0." + b"0" * s) for s in range(4)] for neg in (0, 1)],
                   np.uint64)


def _unit_slots(m: np.ndarray, k: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """(n, 16) bytes of '%.9g' of values in [1e-4, 1) (a unit-size object's coordinates), from their
    9 significant digits m (the value is m / 10^k, k = 9..12): '[-]0.' + (k - 9) zeros + the digits
    without trailing zeros. The digits are laid out in two 64-bit words and shifted into place."""
    m32 = m.astype(np.uint32)
    a = m32 // np.uint32(100_000_000)
    r = m32 - a * np.uint32(100_000_000)
    b = r // np.uint32(10_000)
    c = r - b * np.uint32(10_000)
    qb, qc = _QUADS[b].astype(np.uint64), _QUADS[c].astype(np.uint64)
    lo = (a.astype(np.uint64) + _U64(48)) | (qb << _U64(8)) | (qc << _U64(40))  # digit bytes 0-7
    hi = qc >> _U64(24)  # digit byte 8
    tz = np.where(c != 0, _QUAD_TZ[c], np.where(b != 0, 4 + _QUAD_TZ[b], 8))  # trailing zero digits
    lo &= _KEEP_LO[9 - tz]
    hi &= _KEEP_HI[9 - tz]
    s = k - 9
    t = (s.astype(np.uint64) + _U64(3)) * _U64(8)  # room for [sign]0.[s zeros]: 24..48 bits
    out = np.empty((len(m), 2), "<u8")
    out[:, 1] = (hi << t) | (lo >> (_U64(64) - t))
    out[:, 0] = (lo << t) | _PREFIX[neg.astype(np.intp), s]
    return out.view(np.uint8)


def _float32_slots(x: np.ndarray) -> np.ndarray:
    """(n, w) bytes of '%.9g' % each float32 value (see the module docstring for why it is exact):
    [sign][integer digits, leading zeros dropped]['.'][12 fraction digits, trailing zeros dropped];
    w >= 16 > len('-1.23456789e-05'), the longest '%.9g' of a float32 (written as '%' writes it)."""
    n = len(x)
    with np.errstate(invalid="ignore"):
        a = np.abs(x.astype(np.float64))
    usable = np.isfinite(a) & (a > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.floor(np.log10(np.where(usable, a, 1.0)))
    k = np.clip(_SIG - 1 - e, 0, 12).astype(np.int64)
    m = np.rint(a * _POW10[k])
    for _ in range(3):  # log10 can be off by one near a power of ten; rounding can carry to 10^9
        up, down = (m >= 1e9) & (k > 0), (m < 1e8) & (k < 12)
        if not (up.any() or down.any()):
            break
        k = k - up + down
        m = np.rint(a * _POW10[k])
    fast = usable & (m >= 1e8) & (m < 1e9)
    neg = np.signbit(x)
    unit = fast & (k >= 9)  # |x| in [1e-4, 1)
    if unit.all():
        return _unit_slots(m, k, neg)
    out_of_unit = np.flatnonzero(~unit)  # few, if any, for a unit-size object: each formatted on its own
    o_fast, o_zero = fast[out_of_unit], a[out_of_unit] == 0
    mi = np.where(o_fast, m[out_of_unit], 0).astype(np.int64)  # 9 significant digits; value = mi / 10^k
    ko = k[out_of_unit]
    whole, frac = np.divmod(mi, _IPOW10[ko])
    frac *= _IPOW10[12 - ko]  # the fraction as 12 digits
    iw = len(str(int(whole.max(initial=0))))  # digits of the widest integer part
    other = np.zeros((len(out_of_unit), iw + 14), np.uint8)
    if iw > 1:
        nd = np.searchsorted(_IPOW10[1:10], whole, side="right") + 1  # digits of each integer part
        other[:, 1:iw + 1] = _digits(whole, 12)[:, 12 - iw:]
        other[:, 1:iw + 1] *= np.arange(iw)[None, :] >= (iw - nd)[:, None]
    else:
        other[:, 1] = whole.astype(np.uint8) + 48
    other[:, iw + 1] = np.where(frac > 0, ord("."), 0)
    other[:, iw + 2:] = _fraction_digits(frac)
    other[:, 0] = np.where(neg[out_of_unit] & (o_fast | o_zero), ord("-"), 0)
    rest = np.flatnonzero(~(o_fast | o_zero))
    if len(rest):
        with np.errstate(invalid="ignore"):
            other[rest] = _percent_slots(x[out_of_unit[rest]].astype(np.float64), "%.9g", other.shape[1])
    out = np.zeros((n, max(16, iw + 14)), np.uint8)
    out[out_of_unit, :iw + 14] = other
    if len(out_of_unit) < n:
        out[unit, :16] = _unit_slots(m[unit], k[unit], neg[unit])
    return out


def _int_slots(x: np.ndarray) -> np.ndarray:
    """(n, w) bytes of '%d' % each integer, right-aligned (leading bytes 0 = none)."""
    if x.dtype.kind == "u" and x.dtype.itemsize == 8 and len(x) and x.max() > np.iinfo(np.int64).max:
        return _percent_slots(x, "%d")
    v = x.astype(np.int64)
    if len(v) and (v.min() <= -10 ** 18 or v.max() >= 10 ** 18):
        return _percent_slots(x, "%d")
    a = np.abs(v)
    top = int(a.max(initial=0))
    w = len(str(top))
    out = np.zeros((len(v), w + 1), np.uint8)
    out[:, 1:] = _digits(a, -(-w // 4) * 4)[:, -w:]
    # leading zeros are no bytes; the sign goes just before the first digit
    nd = np.ones(len(v), np.int64) + sum((a >= _IPOW10[t]).astype(np.int64) for t in range(1, w))
    out[:, 1:] *= np.arange(w)[None, :] >= (w - nd)[:, None]
    neg = np.flatnonzero(v < 0)
    out[neg, w - nd[neg]] = ord("-")
    return out


def _slots(column: np.ndarray) -> np.ndarray:
    c = np.asarray(column)
    if c.dtype == np.float32:
        return _float32_slots(c)
    if c.dtype.kind in "iub":
        return _int_slots(c)
    return _percent_slots(c, number_format(c.dtype))


class Table:
    """Equal-length 1-D columns formatted once (each value exact, see number_format) and written
    as text rows with any separator: a build writes an anomalous sample's points twice (its .pcd,
    space-separated, and its GT text with a label column), and formats the floats once for both."""

    def __init__(self, columns: list[np.ndarray]):
        self.slots = [_slots(c) for c in columns]
        self.rows = len(columns[0]) if columns else 0

    def bytes(self, sep: str = " ", extra: list[np.ndarray] | None = None) -> bytes:
        """The rows as ascii, one line each, values joined by `sep`; `extra` columns appended (formatted now)."""
        slots = self.slots + [_slots(c) for c in extra or []]
        if self.rows == 0 or not slots:
            return b""
        s = np.frombuffer(sep.encode("ascii"), np.uint8)
        parts = []
        for i, block in enumerate(slots):
            if i:
                parts.append(np.broadcast_to(s, (self.rows, len(s))))
            parts.append(block)
        parts.append(np.full((self.rows, 1), ord("\n"), np.uint8))
        flat = np.concatenate(parts, axis=1).reshape(-1)
        return flat[flat != 0].tobytes()

    def text(self, sep: str = " ", extra: list[np.ndarray] | None = None) -> str:
        return self.bytes(sep, extra).decode("ascii")


def format_table(columns: list[np.ndarray], sep: str = " ") -> str:
    """Rows of the given equal-length 1-D columns, one line each, every value exact."""
    return Table(columns).text(sep)


def table_problem(exc: ValueError, expected: str) -> str:
    """What is wrong with a text table, in the user's terms, from numpy.loadtxt's error
    (whose own wording names numpy parameters such as `usecols`)."""
    text = str(exc)
    row = re.search(r"row (\d+)", text)
    bad = re.search(r"could not convert string '([^']*)'", text)
    if bad:  # numpy counts this row from 0 and the other from 1: name the value, not the row
        return f"{bad.group(1)!r} is not a number (each row: {expected})"
    return f"{f'data row {row.group(1)}' if row else 'a data row'} is not {expected}"
