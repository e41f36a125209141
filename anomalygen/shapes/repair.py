"""Make a user's or a ShapeNet mesh a closed solid while keeping the object the user gave.

Each body of the mesh gets the cheapest repair that closes it, in the order that keeps the
most of the user's surface; a repair runs only where the one before left a body open:

    merged     duplicate vertices merged, zero-area and repeated faces dropped (a doubly wound
               face keeps one copy), each body's winding made consistent (trimesh)
    filled     an open body's holes closed by patches (open3d's hole filler, VTK's
               vtkFillHolesFilter; pymeshfix does more but is GPL and drops small bodies)
    remeshed   what is still open rebuilt from a voxel grid whose pitch follows the part's
               thinnest feature (anomalygen.shapes.remesh); never for a closed input
    dropped    open fragments beside closed bodies that enclose nothing even then (a stray
               triangle) left out
    united     the closed bodies joined by a boolean union (manifold3d), so leads or pins
               modelled as separate, overlapping solids become one solid; a body inside
               another and wound inward stays a cavity

A closed, consistently wound single body is used as it is. After any repair the two-sided
distance between the user's surface and the repaired one (anomalygen.shapes.fidelity) is
measured; above `RepairSettings.max_tau` tau the mesh is refused with that distance and what
to do (`refusal`). Everything happens at the user's unit bounding-box diagonal, so distances
are fractions of the diagonal, as tau is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from anomalygen import geometry as g
from anomalygen.errors import FormatError
from anomalygen.shapes.catalog import normalize
from anomalygen.shapes.fidelity import RepairDistance, repair_distance
from anomalygen.shapes.remesh import remesh_pitch, voxel_remesh

# a closed body enclosing less volume than this (at unit diagonal) is a sheet or a sliver, not a solid
MIN_BODY_VOLUME = 1e-9


@dataclass(frozen=True)
class RepairSettings:
    """voxel_pitch: the coarsest pitch of a voxel remesh (unit diagonal); max_tau: the largest
    distance a repair may move the surface, in tau; tau: the labels' tau (unit diagonal)."""

    voxel_pitch: float = 0.008
    max_tau: float = 1.0
    tau: float = 0.003


@dataclass
class Repaired:
    """A repair's outcome, in the user's unit-diagonal frame."""

    mesh: trimesh.Trimesh
    steps: list[str] = field(default_factory=list)  # of 'merged', 'filled', 'remeshed', 'dropped', 'united'
    distance: RepairDistance | None = None  # None: used as it is
    pitch: float | None = None              # the voxel pitch, when remeshed
    thinnest: float | None = None           # the thinnest feature that set it

    @property
    def how(self) -> str:
        """'as-is' | 'repaired' (merged, filled, dropped or united: no vertex moved) | 'voxel-remeshed'."""
        return "voxel-remeshed" if "remeshed" in self.steps else "repaired" if self.steps else "as-is"


def load_mesh(path) -> trimesh.Trimesh:
    """Read obj/ply/stl/off as one mesh (scenes are concatenated); FormatError if none."""
    try:
        m = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
    except Exception:  # trimesh raises many kinds for corrupt files
        kind = Path(str(path)).suffix.lstrip(".").upper() or "mesh"
        raise FormatError(f"{path}: cannot read it as a {kind} mesh file (expected vertices and triangles)") from None
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise FormatError(f"{path}: no triangles in file")
    # checked before processing, which would silently drop such vertices and open the mesh
    bad = ~np.isfinite(np.asarray(m.vertices, np.float64)).all(axis=1)
    if bad.any():
        raise FormatError(f"{path}: {int(bad.sum())} of {len(bad)} vertices have NaN or infinite coordinates")
    m.process()
    return m


def _solid(m: trimesh.Trimesh) -> bool:
    return bool(m.is_watertight and m.is_winding_consistent and abs(m.volume) > MIN_BODY_VOLUME)


def merged(m: trimesh.Trimesh) -> trimesh.Trimesh:
    """One vertex per position (to 1e-7 of the diagonal), no zero-area faces, each triangle once
    (a face listed in both orientations, as doubly wound exports do, keeps one copy)."""
    m = trimesh.Trimesh(np.asarray(m.vertices, np.float64), np.asarray(m.faces), process=False)
    m.merge_vertices(digits_vertex=7)
    m.update_faces(m.nondegenerate_faces())
    m.update_faces(m.unique_faces())
    m.remove_unreferenced_vertices()
    return m


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """The simple closed loops of vertex indices along the open edges of a consistently wound
    surface, each in the direction of its faces' edges. Each open edge is walked once; where two
    holes share a vertex the walk still closes (every vertex has as many open edges in as out),
    and a walk that passes a vertex twice is cut there into simple loops."""
    e = np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    inner = set(map(tuple, e[:, ::-1].tolist()))
    nxt: dict[int, list[int]] = {}
    for a, b in e.tolist():  # one pass over the edges; the walk below follows only open ones
        if (a, b) not in inner:
            nxt.setdefault(a, []).append(b)
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop, v = [start], start
        while True:
            w = nxt[v].pop()
            if not nxt[v]:
                del nxt[v]
            if w == start or w not in nxt:
                break
            loop.append(w)
            v = w
        loops += _simple(loop)
    return loops


def _simple(walk: list[int]) -> list[list[int]]:
    """A closed walk cut into loops that pass each vertex once."""
    out, stack, at = [], [], {}
    for v in walk + walk[:1]:
        if v in at:  # the walk came back to v: what it went round since is one loop
            i = at[v]
            out.append(stack[i:])
            for w in stack[i + 1:]:
                del at[w]
            del stack[i + 1:]
        else:
            at[v] = len(stack)
            stack.append(v)
    return [loop for loop in out if len(loop) >= 3]


def _filled(body: trimesh.Trimesh) -> trimesh.Trimesh:
    """An open body with each hole closed by a fan of triangles around the hole's centroid.

    Written here because the libraries at hand do not close every hole: open3d's filler (VTK's
    vtkFillHolesFilter) leaves holes that share a vertex open, trimesh's fills only holes of
    three or four edges, and pymeshfix (which does) is GPL."""
    v = np.asarray(body.vertices, np.float64)
    f = np.asarray(body.faces, np.int64)
    new_v, new_f = [v], [f]
    n = len(v)
    for loop in boundary_loops(f):
        if len(loop) < 3:
            continue
        a = np.asarray(loop)
        b = np.roll(a, -1)
        new_v.append(v[a].mean(axis=0)[None])
        new_f.append(np.column_stack([b, a, np.full(len(a), n)]))  # reversed edges: same winding as the body
        n += 1
    out = trimesh.Trimesh(np.concatenate(new_v), np.concatenate(new_f), process=False)
    if out.is_watertight and out.volume < 0:  # a filled open surface is a solid: outward
        out.invert()
    return out


def _inside(bodies: list[trimesh.Trimesh], points: np.ndarray) -> np.ndarray:
    """(K,) bool: points inside any of the closed `bodies` (ray-parity votes, open3d)."""
    import open3d as o3d

    q = o3d.core.Tensor(np.asarray(points, np.float32))
    return np.any([g.scene(b).compute_occupancy(q, nsamples=3).numpy() > 0.5 for b in bodies], axis=0)


def _united(solids: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """The union of the outward bodies minus the inward ones that lie inside one of them (cavities);
    an inward body outside every other is a solid wound the wrong way and is turned."""
    import manifold3d

    outward = [b for b in solids if b.volume > 0]
    inward = [b for b in solids if b.volume < 0]
    inside = _inside(outward, np.stack([b.vertices[0] for b in inward])) if inward and outward else np.zeros(len(inward), bool)
    cavities = [b for b, k in zip(inward, inside) if k]
    outward += [b for b, k in zip(inward, inside) if not k]
    for b in outward + cavities:
        if b.volume < 0:
            b.invert()

    def manifolds(bodies):
        out = []
        for b in bodies:
            try:
                out.append(g.to_manifold(b))
            except ValueError:
                raise FormatError("a closed body of the mesh is not a valid solid (manifold3d refuses it)") from None
        return out

    body = manifold3d.Manifold.batch_boolean(manifolds(outward), manifold3d.OpType.Add)
    if cavities:
        body = body - manifold3d.Manifold.batch_boolean(manifolds(cavities), manifold3d.OpType.Add)
    if body.is_empty():
        raise FormatError("mesh cannot be made watertight (the union of its closed bodies is empty)")
    return g.from_manifold(body)


def repair(mesh: trimesh.Trimesh, settings: RepairSettings = RepairSettings()) -> Repaired:
    """The repair of the module docstring on `mesh`, scaled to the user's unit-diagonal frame;
    FormatError when no repair closes it. Whether the repair moved it too far is `refusal`'s call."""
    with np.errstate(divide="ignore", invalid="ignore"):  # trimesh's centre of mass of a zero-volume body
        return _repair(normalize(mesh), settings)


def _repair(user: trimesh.Trimesh, settings: RepairSettings) -> Repaired:
    if _solid(user) and user.volume > 0 and user.body_count == 1:
        return Repaired(g.canonical(user))
    m = merged(user)
    if len(m.faces) == 0:
        raise FormatError("mesh cannot be made watertight (every face has zero area)")
    bodies = m.split(only_watertight=False, repair=False)
    changed = len(m.faces) != len(user.faces) or len(m.vertices) != len(user.vertices)
    for b in bodies:
        before = np.array(b.faces)
        trimesh.repair.fix_winding(b)
        changed |= not np.array_equal(before, b.faces)
    out = Repaired(m, ["merged"] if changed else [])
    closed = [b for b in bodies if _solid(b)]
    still_open = [b for b in bodies if not _solid(b)]
    if still_open:
        filled = [_filled(b) for b in still_open]
        if any(_solid(f) for f in filled):
            out.steps.append("filled")
        closed += [f for f in filled if _solid(f)]
        still_open = [b for b, f in zip(still_open, filled) if not _solid(f)]
    if still_open:
        if user.is_watertight:  # a closed input is never remeshed: say what is wrong with it instead
            raise FormatError("mesh is closed but not a valid solid (its faces do not bound a volume)")
        rest = trimesh.util.concatenate(still_open)
        out.pitch, out.thinnest = remesh_pitch(rest, settings.voxel_pitch)
        try:
            closed.append(voxel_remesh(rest, out.pitch))
            out.steps.append("remeshed")
        except FormatError:
            if not closed:
                raise
            # open fragments beside closed bodies that enclose nothing even as a slab (a stray
            # triangle): left out; the distance measured below says what that cost
            out.steps.append("dropped")
            out.pitch = out.thinnest = None
    if len(closed) > 1:
        out.steps.append("united")
        fixed = _united(closed)
    else:
        fixed = closed[0]
        if fixed.volume < 0:  # one closed body wound inward
            fixed.invert()
            out.steps = out.steps or ["merged"]
    if not (fixed.is_watertight and fixed.is_volume):
        raise FormatError("mesh cannot be made watertight (the repaired surface is still open)")
    out.mesh = g.canonical(fixed)
    out.steps = out.steps or ["merged"]
    out.distance = repair_distance(user, out.mesh, settings.tau)
    return out


def refusal(r: Repaired, settings: RepairSettings) -> str | None:
    """One line saying how far the repair moved the mesh and what to do, when that is farther
    than settings.max_tau; None when it is within."""
    d = r.distance
    if d is None or d.largest <= settings.max_tau * settings.tau:
        return None
    a, b = d.user_to_repaired / settings.tau, d.repaired_to_user / settings.tau
    where = (f"{a:.1f} tau (parts of your surface outside the repaired solid, {100 * d.user_share_beyond:.1f} % of "
             f"it beyond tau)" if a >= b else
             f"{b:.1f} tau (the repaired surface from yours, {100 * d.repaired_share_beyond:.1f} % of it beyond tau"
             f"{', patches over openings' if 'filled' in r.steps else ''}"
             f"{', voxel pitch %.2g' % r.pitch if r.pitch else ''})")
    return (f"the repair ({'+'.join(r.steps)}) moved the object up to {where}, over the bound of "
            f"{settings.max_tau:g} tau; export it as one closed solid, or accept the change with "
            f"--set shapes.max_repair_tau={np.ceil(max(a, b) * 1.1):g}")
