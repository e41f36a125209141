"""Fast text tables for ASCII PCD and GT files.

Every value is written as printf writes it (`%.9g` for float32, `%.17g` for float64, `%d` for
integers): the text round-trips exactly and its bytes are pinned by the builds' seed tests.
float32 and integer columns are formatted with whole-array integer arithmetic (no library formats
a numpy array with C's `%g` rules in bulk: np.savetxt and `%` over a tuple run per value in
Python's formatter); values outside the range where that arithmetic is exact, and float64
columns, go through Python's `%`, which is the reference.
"""

from __future__ import annotations

import numpy as np

_SLOT = 24          # widest value text: sign, 9 integer digits, '.', 12 fraction digits (or a %e form)
_POW10 = 10 ** np.arange(19, dtype=np.int64)


def number_format(dtype: np.dtype) -> str:
    """printf format that round-trips a value of this dtype exactly."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return "%.9g" if dtype.itemsize <= 4 else "%.17g"
    return "%d"


def format_table_reference(columns: list[np.ndarray], sep: str = " ") -> str:
    """The same text as format_table, one `%` over the whole table (C formatting, Python objects)."""
    n = len(columns[0]) if columns else 0
    if n == 0:
        return ""
    row = sep.join(number_format(c.dtype) for c in columns) + "\n"
    values = np.empty((n, len(columns)), dtype=object)
    for j, c in enumerate(columns):
        values[:, j] = c.tolist()  # Python floats/ints: exact for float32 and float64
    return (row * n) % tuple(values.ravel().tolist())


def _digits(slot: np.ndarray, start: int, value: np.ndarray, width: int, count: np.ndarray) -> None:
    """Write the `count` lowest decimal digits of `value` (most significant first) into
    slot[:, start:start+width], right-aligned; unused positions stay 0 (dropped later)."""
    for j in range(width):
        p = width - 1 - j
        d = (value // _POW10[p]) % 10
        slot[:, start + j] = np.where(p < count, d + 48, 0)


def _ndigits(value: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative int64 values (0 has one)."""
    return np.maximum(1, np.searchsorted(_POW10, value, side="right"))


def _float32_slots(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, _SLOT) uint8 text of `%.9g` for a float32 column, and the rows it could not do exactly.

    %.9g of a value with decimal exponent X in [-4, 8] is fixed notation with 8 - X decimals,
    trailing zeros (and a bare '.') removed. Its 9 significant digits are rint(|v| * 10^(8-X)):
    a float32 has 24 mantissa bits and 10^k = 5^k 2^k with 5^12 < 2^29, so for 8 - X <= 12 the
    float64 product is exact and rint rounds it half-to-even, as glibc's printf does."""
    v = col.astype(np.float64)
    a = np.abs(v)
    finite = np.isfinite(a) & (a > 0)
    safe = np.where(finite, a, 1.0)
    x = np.floor(np.log10(safe)).astype(np.int64)
    d = np.zeros(len(v), np.int64)
    for _ in range(3):  # log10 can be one off near powers of ten: settle X with exact products
        k = np.clip(8 - x, 0, 12)
        d = np.rint(safe * (10.0 ** k)).astype(np.int64)
        x = np.where(d >= 10 ** 9, x + 1, np.where(d < 10 ** 8, x - 1, x))
    k = 8 - x
    ok = finite & (x >= -4) & (x <= 8) & (d >= 10 ** 8) & (d < 10 ** 9)
    d = np.where(ok, d, 10 ** 8)
    k = np.where(ok, k, 0)
    ip, fp = d // _POW10[k], d % _POW10[k]
    nf = k.copy()
    for _ in range(12):  # strip trailing zeros of the fraction
        z = (nf > 0) & (fp % 10 == 0)
        fp = np.where(z, fp // 10, fp)
        nf = nf - z
    slot = np.zeros((len(v), _SLOT), np.uint8)
    slot[:, 0] = np.where(np.signbit(v), ord("-"), 0)
    _digits(slot, 1, ip, 9, _ndigits(ip))
    slot[:, 10] = np.where(nf > 0, ord("."), 0)
    _digits(slot, 11, fp, 12, nf)  # nf digits of fp, leading zeros included
    zero = a == 0
    slot[zero, 1:] = 0
    slot[zero, 9] = ord("0")
    return slot, ~(ok | zero)


def _int_slots(col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, _SLOT) uint8 text of `%d`, and the rows outside |v| < 10^18."""
    v = col.astype(np.int64)
    bad = (v <= -10 ** 18) | (v >= 10 ** 18)
    a = np.where(bad, 0, np.abs(v))
    slot = np.zeros((len(v), _SLOT), np.uint8)
    slot[:, 0] = np.where(v < 0, ord("-"), 0)
    _digits(slot, 1, a, 18, _ndigits(a))
    return slot, bad


def format_table(columns: list[np.ndarray], sep: str = " ") -> str:
    """Rows of the given equal-length 1-D columns, one line each, every value exact (printf text)."""
    n = len(columns[0]) if columns else 0
    if n == 0:
        return ""
    if any(c.dtype.kind not in "iuf" or (c.dtype.kind == "f" and c.dtype.itemsize > 4) for c in columns) \
            or any(c.dtype.kind == "u" and c.dtype.itemsize >= 8 for c in columns):
        return format_table_reference(columns, sep)
    sepb = sep.encode("ascii")
    parts = []
    for j, c in enumerate(columns):
        slot, bad = _float32_slots(c) if c.dtype.kind == "f" else _int_slots(c)
        for i in np.flatnonzero(bad):  # the few values the integer path cannot do exactly
            text = (number_format(c.dtype) % c[i].item()).encode("ascii")
            slot[i] = 0
            slot[i, :len(text)] = np.frombuffer(text, np.uint8)
        parts.append(slot)
        tail = b"\n" if j == len(columns) - 1 else sepb
        parts.append(np.broadcast_to(np.frombuffer(tail, np.uint8), (n, len(tail))))
    table = np.concatenate(parts, axis=1)
    return table[table != 0].tobytes().decode("ascii")
