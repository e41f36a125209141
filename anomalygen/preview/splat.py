"""A tiny point-splat renderer: numpy z-buffer + Pillow, no GUI, no GPU.

Why by hand: matplotlib's 3D scatter has no real occlusion (a defect on the far
side bleeds through, and it is slow on 30K points); open3d's offscreen renderer
needs EGL/OSMesa, absent on headless CI. Points are shaded with
Lambert lighting (normals of the smoothed z-buffer, or open3d-estimated point
normals), so dents and bumps read as shape, and anomalous points are drawn red
on top of the same shading. Callers with their own per-point colours (a score
map, see anomalygen.preview.colors) pass `colors` and get the same shading.

A random sample leaves gaps wider than a splat here and there; through such a gap the
z-buffer holds the far side of the object, and its shading drew a pit on a flat face.
A pixel that nearer pixels surround on every side within a few splats (`see_through`, a
screen-space visibility test after Pintus et al. 2011, "Real-time rendering of massive
unstructured raw point clouds using screen-space operators") takes the nearest front pixel's
point instead; a real opening wider than that reach still shows what lies behind it.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 255
NORMAL_RGB = np.array([190, 195, 205], np.float64)
ANOMALY_RGB = np.array([235, 30, 30], np.float64)


def look_rotation(direction: np.ndarray, up_hint=(0.0, 0.0, 1.0)) -> np.ndarray:
    """3x3 rotation whose rows are (right, up, toward-camera) for a camera looking along -direction.

    `direction` points from the object toward the camera."""
    z = np.asarray(direction, float)
    z = z / (np.linalg.norm(z) + 1e-12)
    up = np.asarray(up_hint, float)
    if abs(z @ up) > 0.95:
        up = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.95 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def view_direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])


def estimate_normals(points: np.ndarray, radius: float, k: int = 40) -> np.ndarray:
    """Normals from local PCA over a neighbourhood wide compared with a thin wall's thickness
    (two parallel walls in one small neighbourhood would tilt the PCA normal sideways)."""
    import open3d as o3d

    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=k))
    return np.asarray(pc.normals)


def point_spacing(points: np.ndarray, rng: np.random.Generator | None = None) -> float:
    """Median nearest-neighbour distance (about half the mean spacing of a uniform sample)."""
    from scipy.spatial import cKDTree

    rng = rng or np.random.default_rng(0)
    sub = points[rng.choice(len(points), min(len(points), 2000), replace=False)]
    d, _ = cKDTree(points).query(sub, k=2)
    return float(np.median(d[:, 1]))


def _point_rgb(colors) -> np.ndarray:
    """Caller's (N,3) colours as float 0..255: integer arrays are 0..255, float arrays 0..1."""
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[1] != 3:
        raise ValueError(f"colors must be (N, 3) RGB, got shape {c.shape}")
    return c.astype(np.float64) * (255.0 if np.issubdtype(c.dtype, np.floating) else 1.0)


def _shaded(lab: np.ndarray, shade: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
    """Colours under the Lambert factor `shade`: the label colouring (normal grey, anomalous red kept
    bright so it reads in shadow too), or the caller's colours shaded like normal points."""
    if rgb is None:
        return np.where(lab[:, None], ANOMALY_RGB * (0.55 + 0.45 * shade[:, None]), NORMAL_RGB * shade[:, None])
    return rgb * shade[:, None]


FAR = -1e9  # z-buffer value of an empty pixel (pixel units; larger = nearer)
DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def _shifted(a: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """a moved so that out[y, x] = a[y + dy, x + dx]; `fill` beyond the frame."""
    out = np.full_like(a, fill)
    h, w = a.shape
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    out[yd, xd] = a[ys, xs]
    return out


def see_through(z: np.ndarray, filled: np.ndarray, reach: int, slope: float = 1.0, margin: float = 1.0) -> np.ndarray:
    """(H, W) bool: filled pixels seen through a gap in a nearer surface. `z` is the z-buffer in
    pixel units (larger = nearer). A pixel is seen through when, in each of 8 directions, some
    filled pixel within `reach` lies nearer by more than `slope` per pixel of distance plus
    `margin`: a flat face seen at a slant rises in one direction only, never in all eight."""
    hidden = filled.copy()
    for dy, dx in DIRECTIONS:
        step = float(np.hypot(dy, dx))
        blocked = np.zeros_like(filled)
        for k in range(1, reach + 1):
            zn = _shifted(z, k * dy, k * dx, FAR)
            blocked |= zn - z > slope * k * step + margin
        hidden &= blocked
        if not hidden.any():
            break
    return hidden


def depth_shading(z: np.ndarray, filled: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) Lambert factor from the normals of a z-buffer (pixel units, larger = nearer) smoothed
    over the filled pixels; the same light as point shading."""
    from scipy.ndimage import gaussian_filter

    w = filled.astype(np.float64)
    zs = gaussian_filter(np.where(filled, z, 0.0), sigma) / np.maximum(gaussian_filter(w, sigma), 1e-6)
    gy, gx = np.gradient(zs)
    nrm = np.stack([-gx, gy, np.ones_like(zs)], -1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    return 0.28 + 0.72 * np.clip(nrm @ LIGHT, 0, 1)


LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])


def render(points: np.ndarray, labels: np.ndarray | None, direction: np.ndarray, size: int = 256,
           normals: np.ndarray | None = None, center: np.ndarray | None = None, extent: float | None = None,
           spacing: float | None = None, shading: str = "depth", colors: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) uint8 image of the points seen from `direction` (orthographic).

    shading 'depth': Lambert on normals of the smoothed z-buffer (clean, view-dependent);
    'points': Lambert on per-point PCA normals (noisier on thin walls).
    colors: optional (N,3) RGB per point (uint8 0..255 or float 0..1) used instead of the label
    colouring and shaded the same way; `labels` still decide which points win the z-buffer
    (anomalous ones are pulled forward), so a coloured render shows the same points as a labelled one."""
    pts = np.asarray(points, np.float64)
    if len(pts) == 0:
        return np.full((size, size, 3), BACKGROUND, np.uint8)
    lab = np.zeros(len(pts), bool) if labels is None else np.asarray(labels).astype(bool)
    rgb = None if colors is None else _point_rgb(colors)
    if rgb is not None and len(rgb) != len(pts):
        raise ValueError(f"colors has {len(rgb)} rows for {len(pts)} points")
    center = pts.mean(0) if center is None else center
    extent = float(np.linalg.norm(pts.max(0) - pts.min(0))) if extent is None else extent
    spacing = point_spacing(pts) if spacing is None else spacing
    if normals is None:
        normals = estimate_normals(pts, 12.0 * spacing) if shading == "points" else np.tile([0, 0, 1.0], (len(pts), 1))
    R = look_rotation(direction)
    cam = (pts - center) @ R.T
    n = normals @ R.T
    n *= np.where(n[:, 2:3] < 0, -1.0, 1.0)  # face the camera
    shade = 0.28 + 0.72 * np.clip(n @ LIGHT, 0, 1)
    scale = size * 0.92 / extent
    px = cam[:, 0] * scale + size / 2
    py = size / 2 - cam[:, 1] * scale
    r = int(np.clip(np.ceil(1.9 * spacing * scale), 1, 8))
    oy, ox = np.mgrid[-r:r + 1, -r:r + 1]
    disk = ox ** 2 + oy ** 2 <= r * r + r
    ox, oy = ox[disk], oy[disk]
    X = (np.round(px)[:, None] + ox[None]).ravel().astype(np.int64)
    Y = (np.round(py)[:, None] + oy[None]).ravel().astype(np.int64)
    owner = np.repeat(np.arange(len(pts)), len(ox))
    ok = (X >= 0) & (X < size) & (Y >= 0) & (Y < size)
    X, Y, owner = X[ok], Y[ok], owner[ok]
    pix = Y * size + X
    # anomalous points get a small depth bias so a label at the bottom of a narrow groove is
    # not hidden by the splats of its rim (the bias is far below any wall thickness we make)
    depth = cam[:, 2] + lab * (0.006 * extent)
    order = np.lexsort((-depth[owner], pix))  # per pixel, nearest point first
    pix, owner = pix[order], owner[order]
    first = np.r_[True, pix[1:] != pix[:-1]]
    winner = np.full(size * size, -1, np.int64)
    winner[pix[first]] = owner[first]
    filled = (winner >= 0).reshape(size, size)
    zfront = np.full(size * size, FAR)
    zfront[pix[first]] = depth[owner[first]] * scale
    hidden = see_through(zfront.reshape(size, size), filled, reach=2 * r + 2)
    if hidden.any():  # a gap in the front surface: the nearest front pixel's point shows instead
        from scipy.ndimage import distance_transform_edt

        _, (iy, ix) = distance_transform_edt(~(filled & ~hidden), return_indices=True)
        flat = np.flatnonzero(hidden)
        winner[flat] = winner[iy.ravel()[flat] * size + ix.ravel()[flat]]
    drawn = np.flatnonzero(winner >= 0)
    win = winner[drawn]
    img = np.full((size * size, 3), BACKGROUND, np.float64)
    if shading == "depth":  # screen-space normals from the smoothed z-buffer: clean on thin walls
        zbuf = np.zeros(size * size)
        zbuf[drawn] = cam[win, 2] * scale
        visible = filled & ~hidden
        sh = depth_shading(zbuf.reshape(size, size), visible, max(1.0, 0.8 * r)).reshape(-1)[drawn]
        img[drawn] = _shaded(lab[win], sh, None if rgb is None else rgb[win])
    else:
        img[drawn] = _shaded(lab, shade, rgb)[win]
    return np.clip(img, 0, 255).astype(np.uint8).reshape(size, size, 3)
