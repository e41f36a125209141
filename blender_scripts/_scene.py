"""Scene, mesh I/O and mesh-data utilities for the scripts in this folder.

Runs INSIDE Blender. These import and export mesh files, reset the scene, and
move one object's vertex data in and out as numpy arrays (foreach_get and
foreach_set are Blender's fast path), so the defect modules can compute in
arrays and hand Blender only the result.
"""

from __future__ import annotations

import os

import bpy  # noqa: I001  (first: the bpy module provides bmesh and mathutils)
import bmesh
import numpy as np
from mathutils.bvhtree import BVHTree


def reset_scene() -> None:
    """Factory settings with an empty scene: every job starts from the same state."""
    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_mesh(path: str) -> bpy.types.Object:
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    before = set(bpy.data.objects)
    if ext == ".ply":
        bpy.ops.wm.ply_import(filepath=path)
    elif ext == ".obj":
        bpy.ops.wm.obj_import(filepath=path, forward_axis="Y", up_axis="Z")
    elif ext == ".stl":
        bpy.ops.wm.stl_import(filepath=path, forward_axis="Y", up_axis="Z")
    else:
        raise ValueError(f"{path}: unsupported mesh format {ext} (ply, obj, stl)")
    new = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    if len(new) != 1:
        raise ValueError(f"{path}: expected one mesh object, found {len(new)}")
    ob = new[0]
    bpy.context.view_layer.objects.active = ob
    return ob


def export_ply(ob: bpy.types.Object, path: str) -> None:
    bpy.ops.object.select_all(action="DESELECT")
    ob.select_set(True)
    bpy.context.view_layer.objects.active = ob
    tmp = path + ".part.ply"
    bpy.ops.wm.ply_export(filepath=tmp, export_selected_objects=True, export_normals=False,
                          export_uv=False, export_colors="NONE", ascii_format=False,
                          apply_modifiers=True, export_triangulated_mesh=True,
                          forward_axis="Y", up_axis="Z")
    os.replace(tmp, path)


def vertices(ob) -> np.ndarray:
    me = ob.data
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def set_vertices(ob, co: np.ndarray) -> None:
    ob.data.vertices.foreach_set("co", np.asarray(co, np.float32).ravel())
    ob.data.update()


def vertex_normals(ob) -> np.ndarray:
    me = ob.data
    nrm = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("normal", nrm)
    return nrm.reshape(-1, 3).astype(np.float64)


def triangles(ob) -> np.ndarray:
    me = ob.data
    me.calc_loop_triangles()
    tri = np.empty(len(me.loop_triangles) * 3, np.int64)
    me.loop_triangles.foreach_get("vertices", tri)
    return tri.reshape(-1, 3)


def make_object(name: str, verts: np.ndarray, faces: np.ndarray) -> bpy.types.Object:
    me = bpy.data.meshes.new(name)
    me.from_pydata([tuple(v) for v in np.asarray(verts, float)], [], [tuple(int(i) for i in f) for f in faces])
    me.validate()
    me.update()
    ob = bpy.data.objects.new(name, me)
    bpy.context.scene.collection.objects.link(ob)
    return ob


def bvh_of(ob) -> BVHTree:
    """BVH of the object's surface (object space == world space here: no transforms are used)."""
    return BVHTree.FromObject(ob, bpy.context.evaluated_depsgraph_get())


def apply_modifier(ob, mod) -> None:
    bpy.context.view_layer.objects.active = ob
    bpy.ops.object.modifier_apply(modifier=mod.name)


def triangulate(ob) -> None:
    """Triangulate n-gons (booleans make them; exporting them unsplit is not watertight)."""
    me = ob.data
    sizes = np.empty(len(me.polygons), np.int32)
    me.polygons.foreach_get("loop_total", sizes)
    if len(sizes) and (sizes == 3).all():
        return
    # bmesh's triangulate, not the Triangulate modifier: on the n-gons left by a partial
    # subdivide the modifier made edges with three faces (measured); bmesh keeps it manifold
    bm = bmesh.new()
    bm.from_mesh(me)
    bmesh.ops.triangulate(bm, faces=[f for f in bm.faces if len(f.verts) > 3])
    bm.to_mesh(me)
    bm.free()
    me.update()


def is_watertight(ob) -> bool:
    """Every edge has exactly two faces and face orientations agree (closed 2-manifold)."""
    tri = triangles(ob)
    if not len(tri):
        return False
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    n = int(tri.max()) + 1
    keys = np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(directed[:, 0], directed[:, 1])
    _, counts = np.unique(keys, return_counts=True)
    forward = np.unique(directed[:, 0] * n + directed[:, 1])
    return bool((counts == 2).all() and len(forward) == len(directed))


def select_vertices(ob, mask: np.ndarray) -> None:
    """Select exactly `mask` vertices (edges/faces too, so edit mode does not re-flush others)."""
    me = ob.data
    mask = np.asarray(mask, bool)
    me.vertices.foreach_set("select", mask.astype(np.int32))   # int32: the fast buffer path
    ev = np.empty(len(me.edges) * 2, np.int64)
    me.edges.foreach_get("vertices", ev)
    me.edges.foreach_set("select", mask[ev.reshape(-1, 2)].all(1).astype(np.int32))
    loops = np.empty(len(me.loops), np.int64)
    me.loops.foreach_get("vertex_index", loops)
    start = np.empty(len(me.polygons), np.int64)
    me.polygons.foreach_get("loop_start", start)
    poly_sel = np.logical_and.reduceat(mask[loops], start) if len(start) else np.zeros(0, bool)
    me.polygons.foreach_set("select", poly_sel.astype(np.int32))
    me.update()


def weight_group(ob, name: str, weights: np.ndarray):
    """A vertex group holding `weights` (> 0 only); one add() call per distinct weight."""
    vg = ob.vertex_groups.new(name=name)
    idx = np.nonzero(weights > 0)[0]
    q = np.round(weights[idx], 3)
    for w in np.unique(q):
        vg.add(idx[q == w].tolist(), float(w), "REPLACE")
    return vg
