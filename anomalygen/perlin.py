"""2-D Perlin improved noise over whole arrays (numpy) and batches (torch).

Written by hand because no maintained library offers vectorized improved noise:
the `noise` package (Casey Duncan's C module) is scalar-only, one Python call per
pixel. This module reproduces `noise.pnoise2` value for value (same permutation
table, same `repeatx`/`repeaty`/`base` semantics, same float32 input rounding,
same octave sum) so the reference stays checkable, while evaluating a whole
grid in a few array operations.

pnoise2's algorithm (Ken Perlin's improved noise, 2-D slice):
    i = floor(fmod(x, repeatx)), ii = fmod(i + 1, repeatx)  (same for y)
    lattice indices are (k & 255) + base, hashed through PERM (512 entries)
    fade t^3 (t (6t - 15) + 10), gradients GRAD3[h & 15][:2]
    octaves: sum noise(x f, y f, repeat f) * amp, f *= lacunarity,
    amp *= persistence, divided by the sum of amplitudes.
`noise` indexes its 512-entry table up to 510 + 2*base: for base >= 1 some
cells read past the table (undefined behaviour in the C code). We extend the
table periodically (perm[k % 256]); for base in {0, 1} every value is equal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Ken Perlin's reference permutation, the table `noise` ships.
PERMUTATION = np.array([
    151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69, 142, 8, 99, 37,
    240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219, 203, 117, 35, 11, 32, 57, 177,
    33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175, 74, 165, 71, 134, 139, 48, 27, 166, 77, 146,
    158, 231, 83, 111, 229, 122, 60, 211, 133, 230, 220, 105, 92, 41, 55, 46, 245, 40, 244, 102, 143, 54, 65, 25,
    63, 161, 1, 216, 80, 73, 209, 76, 132, 187, 208, 89, 18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100,
    109, 198, 173, 186, 3, 64, 52, 217, 226, 250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206,
    59, 227, 47, 16, 58, 17, 182, 189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153,
    101, 155, 167, 43, 172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246,
    97, 228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107, 49, 192,
    214, 31, 181, 199, 106, 157, 184, 84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254, 138, 236, 205, 93, 222, 114,
    67, 29, 24, 72, 243, 141, 128, 195, 78, 66, 215, 61, 156, 180,
], dtype=np.int64)

# (x, y) components of the 16 gradients `noise` indexes with hash & 15 (its GRAD3 table;
# entries 12-15 differ from Perlin's paper, measured by probing pnoise2 at lattice points).
GRAD2 = np.array([[1, 1], [-1, 1], [1, -1], [-1, -1], [1, 0], [-1, 0], [1, 0], [-1, 0],
                  [0, 1], [0, -1], [0, 1], [0, -1], [1, 0], [-1, 0], [0, -1], [0, 1]], dtype=np.float32)


def permutation_table(perm: np.ndarray | None = None, base: int = 0) -> np.ndarray:
    """Lookup table long enough for every index pnoise2 forms: perm[k % 256] for k < 768 + 2*base."""
    p = PERMUTATION if perm is None else np.asarray(perm, dtype=np.int64)
    if p.shape != (256,) or p.min() < 0 or p.max() > 255 or np.bincount(p, minlength=256).max() != 1:
        raise ValueError("perm must be a permutation of 0..255")
    n = 768 + 2 * int(base)
    return p[np.arange(n) % 256]


def random_permutation(rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(256).astype(np.int64)


def _noise2_np(x: np.ndarray, y: np.ndarray, rx: np.float32, ry: np.float32, base: int, table: np.ndarray) -> np.ndarray:
    """One octave; x, y float32 arrays. Mirrors noise2() in the `noise` C module."""
    i = np.floor(np.fmod(x, rx)).astype(np.int64)
    j = np.floor(np.fmod(y, ry)).astype(np.int64)
    ii = np.fmod((i + 1).astype(np.float32), rx).astype(np.int64)
    jj = np.fmod((j + 1).astype(np.float32), ry).astype(np.int64)
    i, j, ii, jj = (i & 255) + base, (j & 255) + base, (ii & 255) + base, (jj & 255) + base
    x = x - np.floor(x)
    y = y - np.floor(y)
    fx = x * x * x * (x * (x * np.float32(6) - np.float32(15)) + np.float32(10))
    fy = y * y * y * (y * (y * np.float32(6) - np.float32(15)) + np.float32(10))
    a, b = table[i], table[ii]
    h_aa, h_ba = table[table[a + j]] & 15, table[table[b + j]] & 15
    h_ab, h_bb = table[table[a + jj]] & 15, table[table[b + jj]] & 15
    gx, gy = GRAD2[:, 0], GRAD2[:, 1]
    x1, y1 = x - np.float32(1), y - np.float32(1)
    n_aa = x * gx[h_aa] + y * gy[h_aa]
    n_ba = x1 * gx[h_ba] + y * gy[h_ba]
    n_ab = x * gx[h_ab] + y1 * gy[h_ab]
    n_bb = x1 * gx[h_bb] + y1 * gy[h_bb]
    lo = n_aa + fx * (n_ba - n_aa)
    hi = n_ab + fx * (n_bb - n_ab)
    return lo + fy * (hi - lo)


def pnoise2_np(x, y, octaves: int = 1, persistence: float = 0.5, lacunarity: float = 2.0,
               repeatx: float = 1024, repeaty: float = 1024, base: int = 0,
               perm: np.ndarray | None = None) -> np.ndarray:
    """Vectorized `noise.pnoise2(x, y, ...)` over broadcastable arrays; float32 result.

    `perm` (a permutation of 0..255) replaces Ken Perlin's table to get a fresh noise field.
    """
    if octaves < 1:
        raise ValueError("octaves must be >= 1")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    x, y = np.broadcast_arrays(x, y)
    table = permutation_table(perm, base)
    rx, ry = np.float32(repeatx), np.float32(repeaty)
    if octaves == 1:
        return _noise2_np(x, y, rx, ry, int(base), table)
    return _octaves(lambda f: _noise2_np(x * f, y * f, rx * f, ry * f, int(base), table),
                    x.shape, octaves, persistence, lacunarity)


def _octaves(layer, shape, octaves: int, persistence: float, lacunarity: float) -> np.ndarray:
    """Fractal sum as pnoise2 forms it, in float32: sum of layer(freq) * amp over the octaves,
    divided by the sum of the amplitudes. `layer(freq)` is one noise layer at that frequency."""
    freq, amp, vmax = np.float32(1), np.float32(1), np.float32(0)
    total = np.zeros(shape, np.float32)
    for _ in range(octaves):  # a handful of octaves, each a whole-array layer
        total += layer(freq) * amp
        vmax += amp
        freq *= np.float32(lacunarity)
        amp *= np.float32(persistence)
    return total / vmax


def _axis(v: np.ndarray, r: np.float32, base: int):
    """Lattice data along one axis of a grid, exactly as pnoise2 computes it per coordinate."""
    k = np.floor(np.fmod(v, r)).astype(np.int64)
    kk = np.fmod((k + 1).astype(np.float32), r).astype(np.int64)
    k, kk = (k & 255) + base, (kk & 255) + base
    f = v - np.floor(v)
    fade = f * f * f * (f * (f * np.float32(6) - np.float32(15)) + np.float32(10))
    return k, kk, f, fade


def _runs(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each run of equal consecutive keys, and each element's run number."""
    change = np.flatnonzero(key[1:] != key[:-1]) + 1
    run = np.zeros(len(key), np.int64)
    run[change] = 1
    return np.concatenate([[0], change]), np.cumsum(run)


@lru_cache(maxsize=512)
def _grid_geometry(xs_key: bytes, ys_key: bytes, rx: float, ry: float, base: int):
    """Everything of `_noise2_grid` that does not depend on the permutation (cached: DAS3D draws
    a fresh permutation per defect but only a few lattice resolutions)."""
    xs, ys = np.frombuffer(xs_key, np.float32), np.frombuffer(ys_key, np.float32)
    w, h = len(xs), len(ys)
    rx, ry = np.float32(rx), np.float32(ry)
    i, ii, x, fx = _axis(xs, rx, base)
    j, jj, y, fy = _axis(ys, ry, base)
    cs, crun = _runs(i * 4096 + ii)
    rs, rrun = _runs(j * 4096 + jj)
    one = np.float32(1)
    c0, c1, c2, c3 = (one - fx) * x, one - fx, fx * (x - one), fx
    ca, cb = np.stack([c0, c1, c0, c1]), np.stack([c2, c3, c2, c3])          # (4, W)
    R = np.stack([one - fy, (one - fy) * y, fy, fy * (y - one)], -1)          # (H, 4)
    lens = np.diff(np.append(rs, h))
    pmax = int(lens.max())
    # the first (partial) row cell ends its block, so equal interior cells make the rows contiguous
    pos = np.arange(h) - rs[rrun] + np.where(rrun == 0, pmax - lens[0], 0)
    rp = np.zeros((len(rs), pmax, 4), np.float32)
    rp[rrun, pos] = R
    flat = rrun * pmax + pos
    rows = slice(int(flat[0]), int(flat[0]) + h) if flat[-1] - flat[0] == h - 1 else flat
    clens = np.diff(np.append(cs, w))
    flip = None
    if (clens == clens[0]).all():  # equal column cells: broadcast per cell instead of gathering per column
        crun = None
        nb, pc = len(cs), int(clens[0])
        ca, cb = ca.reshape(4, nb, pc), cb.reshape(4, nb, pc)
        if (lens == lens[0]).all() and len(rs) > nb:
            # more row cells than column cells: contract over rows first (work ~ H x column cells)
            na, pr = len(rs), int(lens[0])
            al = lambda m: np.ascontiguousarray(m.reshape(4, na, pr).transpose(1, 0, 2)[:, :, None, :])  # noqa: E731
            ra, rb = al(R.T[[0, 1, 0, 1]]), al(R.T[[2, 3, 2, 3]])                 # (na, 4, 1, pr)
            cols = np.stack([c0, c1, c2, c3]).reshape(4, nb, pc).transpose(1, 0, 2).copy()  # (nb, 4, pc)
            flip = (ra, rb, cols)
    geo = (i[cs], ii[cs], j[rs][:, None], jj[rs][:, None], crun, ca, cb, rp, rows, flip)
    for a in geo:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return geo


def _noise2_grid(xs: np.ndarray, ys: np.ndarray, rx: np.float32, ry: np.float32, base: int,
                 table: np.ndarray) -> np.ndarray:
    """pnoise2 on the grid ys x xs (1-D float32), separably.

    Along a grid, the lattice cell of a pixel depends on its column through x only and on
    its row through y only. Expanding the two lerps, noise = R(y) . S(x) with 4 row terms
    R = [(1-fy), (1-fy) y, fy, fy (y-1)] and 4 column terms S that hold the column's fades
    times the corner gradients of each row cell. So per pixel only a 4-term dot product
    remains (`_dot4`, broadcast over row cells); hashing runs once per (row cell, column
    cell). Same values as the per-pixel form up to float32 re-association (~1e-7).
    """
    xs = np.ascontiguousarray(xs, np.float32)
    ys = np.ascontiguousarray(ys, np.float32)
    ci, cii, rj, rjj, crun, ca, cb, rp, rows, flip = _grid_geometry(xs.tobytes(), ys.tobytes(), float(rx), float(ry),
                                                                     int(base))
    a, b = table[ci], table[cii]                             # per column cell
    hash2 = table[table] & 15                                # h = PERM[PERM[k]] & 15 for every k
    n_r, n_c = len(rj), len(ci)
    # corner gradients (row cells, [x, y of aa, x, y of ab, x, y of ba, x, y of bb], column cells)
    g = GRAD2[hash2[np.stack([a + rj, a + rjj, b + rj, b + rjj], 1)]].transpose(0, 1, 3, 2).reshape(n_r, 8, n_c)
    g_a, g_b = g[:, :4], g[:, 4:]
    if flip is not None:  # T[row, k, column cell] first, then one 4-term dot per pixel along columns
        ra, rb, cols = flip
        g_1 = np.concatenate([g_a[:, :2], g_b[:, :2]], 1)   # [aa_x, aa_y, ba_x, ba_y]
        g_2 = np.concatenate([g_a[:, 2:], g_b[:, 2:]], 1)   # [ab_x, ab_y, bb_x, bb_y]
        T = g_1[..., None] * ra + g_2[..., None] * rb        # (row cells, 4, column cells, rows in cell)
        T = T.transpose(2, 0, 3, 1).reshape(n_c, len(ys), 4)
        return _dot4(T[:, :, None, :], cols.transpose(0, 2, 1)[:, None]).transpose(1, 0, 2).reshape(len(ys), len(xs))
    if crun is None:
        S = (g_a[..., None] * ca + g_b[..., None] * cb).reshape(n_r, 4, len(xs))
    else:
        S = g_a[:, :, crun] * ca + g_b[:, :, crun] * cb      # (row cells, 4, W)
    out = _dot4(rp[..., None, :], S.transpose(0, 2, 1)[:, None]).reshape(-1, len(xs))  # (row cells * rows in cell, W)
    return out[rows] if isinstance(rows, slice) else np.take(out, rows, axis=0)


def _dot4(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over the last axis (length 4) of a * b, broadcast: four products added left to right. Not a
    matmul: BLAS kernels differ per CPU (FMA, summation order), and the noise must have the same
    bits on every x86-64 machine."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2] + a[..., 3] * b[..., 3]


@lru_cache(maxsize=512)
def _grid_axes(h: int, w: int, res_r: float, res_c: float, off_r: float, off_c: float):
    """Column and row coordinates (float32, read-only) of a noise image."""
    ys = (np.arange(h, dtype=np.float64) * res_r / h + off_r).astype(np.float32)
    xs = (np.arange(w, dtype=np.float64) * res_c / w + off_c).astype(np.float32)
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def perlin_grid_np(shape: tuple[int, int], res: tuple[float, float], perm: np.ndarray | None = None,
                   octaves: int = 1, persistence: float = 0.5, lacunarity: float = 2.0,
                   offset: tuple[float, float] = (0.0, 0.0), base: int = 0) -> np.ndarray:
    """Noise image (H, W): `res` lattice cells across (rows, cols), like DRAEM's rand_perlin_2d(shape, res).

    Equal to pnoise2(x, y) at x = col * res[1] / W + offset[1], y = row * res[0] / H + offset[0]
    (float32 coordinates, repeat 1024), computed separably (see _noise2_grid).
    """
    h, w = shape
    xs, ys = _grid_axes(int(h), int(w), float(res[0]), float(res[1]), float(offset[0]), float(offset[1]))
    table = permutation_table(perm, base)
    r = np.float32(1024)
    if octaves == 1:
        return _noise2_grid(xs, ys, r, r, int(base), table)
    return _octaves(lambda f: _noise2_grid(xs * f, ys * f, r * f, r * f, int(base), table),
                    (h, w), octaves, persistence, lacunarity)


# ----------------------------------------------------------------------------- torch

def pnoise2_torch(x, y, perm=None, octaves: int = 1, persistence: float = 0.5, lacunarity: float = 2.0,
                  repeatx: float = 1024, repeaty: float = 1024, base: int = 0):
    """Batched `pnoise2` in torch (CPU or GPU). x, y: float tensors broadcastable to (B, ...).

    `perm`: None (Ken Perlin's table), a (256,) table shared by the batch, or (B, 256),
    one table per batch item (then x, y must have a leading batch dimension B).
    """
    import torch

    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.float32, device=x.device)
    x, y = torch.broadcast_tensors(x, y)
    dev = x.device
    p = torch.as_tensor(PERMUTATION if perm is None else perm, dtype=torch.long, device=dev)
    n = 768 + 2 * int(base)
    idx = torch.arange(n, device=dev) % 256
    table = p[..., idx]  # (n,) or (B, n)
    grad = torch.as_tensor(GRAD2, device=dev)
    if table.dim() == 2:
        bsz = table.shape[0]
        if x.shape[0] != bsz:
            raise ValueError(f"perm has {bsz} tables but x has leading size {x.shape[0]}")
        flat_shape = (bsz, -1)

        def look(t):  # gather per batch row
            return torch.gather(table, 1, t.reshape(flat_shape)).reshape(t.shape)
    else:
        def look(t):
            return table[t]

    def one(x, y, rx, ry):
        i = torch.floor(torch.fmod(x, rx)).long()
        j = torch.floor(torch.fmod(y, ry)).long()
        ii = torch.fmod((i + 1).float(), rx).long()
        jj = torch.fmod((j + 1).float(), ry).long()
        i, j, ii, jj = (i & 255) + base, (j & 255) + base, (ii & 255) + base, (jj & 255) + base
        x = x - torch.floor(x)
        y = y - torch.floor(y)
        fx = x * x * x * (x * (x * 6 - 15) + 10)
        fy = y * y * y * (y * (y * 6 - 15) + 10)
        a, b = look(i), look(ii)
        h_aa, h_ba = look(look(a + j)) & 15, look(look(b + j)) & 15
        h_ab, h_bb = look(look(a + jj)) & 15, look(look(b + jj)) & 15
        x1, y1 = x - 1, y - 1
        n_aa = x * grad[h_aa, 0] + y * grad[h_aa, 1]
        n_ba = x1 * grad[h_ba, 0] + y * grad[h_ba, 1]
        n_ab = x * grad[h_ab, 0] + y1 * grad[h_ab, 1]
        n_bb = x1 * grad[h_bb, 0] + y1 * grad[h_bb, 1]
        lo = n_aa + fx * (n_ba - n_aa)
        hi = n_ab + fx * (n_bb - n_ab)
        return lo + fy * (hi - lo)

    if octaves == 1:
        return one(x, y, float(np.float32(repeatx)), float(np.float32(repeaty)))
    freq, amp, vmax = np.float32(1), np.float32(1), np.float32(0)
    total = torch.zeros_like(x)
    for _ in range(octaves):
        total = total + one(x * float(freq), y * float(freq), float(np.float32(repeatx) * freq),
                            float(np.float32(repeaty) * freq)) * float(amp)
        vmax += amp
        freq *= np.float32(lacunarity)
        amp *= np.float32(persistence)
    return total / float(vmax)


def _noise2_grid_torch(xs, ys, r: float, base: int, table, hash2):
    """Batched `_noise2_grid`: xs (B, W), ys (B, H) float32; table, hash2 (B, n) long. Returns (B, H, W)."""
    import torch

    def axis(v):
        k = torch.floor(torch.fmod(v, r)).long()
        kk = torch.fmod((k + 1).float(), r).long()
        f = v - torch.floor(v)
        return (k & 255) + base, (kk & 255) + base, f, f * f * f * (f * (f * 6 - 15) + 10)

    def runs(key):
        change = torch.zeros_like(key)
        change[:, 1:] = (key[:, 1:] != key[:, :-1]).long()
        return torch.cumsum(change, 1)

    bsz, w, h = xs.shape[0], xs.shape[1], ys.shape[1]
    i, ii, x, fx = axis(xs)
    j, jj, y, fy = axis(ys)
    crun, rrun = runs(i * 4096 + ii), runs(j * 4096 + jj)
    nb, na = int(crun.max()) + 1, int(rrun.max()) + 1
    cell = lambda v, run, n: torch.zeros(bsz, n, dtype=v.dtype, device=v.device).scatter_(1, run, v)  # noqa: E731
    a, b = torch.gather(table, 1, cell(i, crun, nb)), torch.gather(table, 1, cell(ii, crun, nb))  # (B, nb)
    rj, rjj = cell(j, rrun, na)[:, :, None], cell(jj, rrun, na)[:, :, None]                     # (B, na, 1)
    grad = torch.as_tensor(GRAD2, device=xs.device)
    cols = crun[:, None, :].expand(bsz, na, w)

    def corner(k):  # (B, na, nb) lattice sums -> gradient x, y per (row cell, column): (B, na, W) each
        hsh = torch.gather(hash2, 1, k.reshape(bsz, -1)).reshape(bsz, na, nb)
        return torch.gather(grad[hsh, 0], 2, cols), torch.gather(grad[hsh, 1], 2, cols)

    (aa_x, aa_y), (ba_x, ba_y) = corner(a[:, None, :] + rj), corner(b[:, None, :] + rj)
    (ab_x, ab_y), (bb_x, bb_y) = corner(a[:, None, :] + rjj), corner(b[:, None, :] + rjj)
    c0, c1, c2, c3 = ((1 - fx) * x)[:, None], (1 - fx)[:, None], (fx * (x - 1))[:, None], fx[:, None]
    S = torch.stack([aa_x * c0 + ba_x * c2, aa_y * c1 + ba_y * c3, ab_x * c0 + bb_x * c2, ab_y * c1 + bb_y * c3], 2)
    R = torch.stack([1 - fy, (1 - fy) * y, fy, fy * (y - 1)], -1)                      # (B, H, 4)
    # each row's 4 terms R times its row cell's S, gathered per row: a batched matmul over cells padded to
    # the longest cell costs B x cells x longest x W, ~50x more on a CPU when a batch mixes 1 and 64 cells
    idx = rrun[:, :, None].expand(bsz, h, w)
    out = R[..., 0, None] * torch.gather(S[:, :, 0], 1, idx)
    for k in range(1, 4):
        out.addcmul_(R[..., k, None], torch.gather(S[:, :, k], 1, idx))
    return out


def perlin_grid_torch(batch: int, shape: tuple[int, int], res, perm=None, octaves: int = 1,
                      persistence: float = 0.5, lacunarity: float = 2.0, offset=None, device="cpu"):
    """(B, H, W) noise images, the batched `perlin_grid_np`. `res`: (B, 2) cells per (rows, cols);
    `perm`: (B, 256), (256,) or None (Ken Perlin's table); `offset`: (B, 2). Separable like `_noise2_grid`."""
    import torch

    h, w = shape
    res = torch.as_tensor(res, dtype=torch.float64, device=device).reshape(batch, 2)
    off = torch.zeros(batch, 2, dtype=torch.float64, device=device) if offset is None else \
        torch.as_tensor(offset, dtype=torch.float64, device=device).reshape(batch, 2)
    ys = (torch.arange(h, dtype=torch.float64, device=device)[None, :] * res[:, :1] / h + off[:, :1]).float()
    xs = (torch.arange(w, dtype=torch.float64, device=device)[None, :] * res[:, 1:] / w + off[:, 1:]).float()
    p = torch.as_tensor(PERMUTATION if perm is None else perm, dtype=torch.long, device=device)
    p = p.expand(batch, 256) if p.dim() == 1 else p
    table = p[:, torch.arange(768, device=device) % 256]
    hash2 = torch.gather(table, 1, table) & 15
    if octaves == 1:
        return _noise2_grid_torch(xs, ys, 1024.0, 0, table, hash2)
    freq, amp, vmax = np.float32(1), np.float32(1), np.float32(0)
    total = torch.zeros(batch, h, w, device=device)
    for _ in range(octaves):
        total = total + _noise2_grid_torch(xs * float(freq), ys * float(freq), float(np.float32(1024) * freq), 0,
                                           table, hash2) * float(amp)
        vmax += amp
        freq *= np.float32(lacunarity)
        amp *= np.float32(persistence)
    return total / float(vmax)
