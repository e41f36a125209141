"""`build-shapenet --source DIR` on 17 real meshes nobody here made, as a new user would run it.

The meshes come from packages the ordinary clients fetch (nothing is vendored):
    Debian  libcgal-demo (CGAL's data/meshes/*.off: CAD parts and scanned shapes, some with holes)
    Debian  assimp-testmodels (importer test files: soups, multi-body exports)
    PyPI    pyvista==0.49.2, the wheel only (pyvista/examples/*.ply: ant, airplane, nut)

For every mesh the table gives what the repair did (anomalygen.shapes.repair), how far that moved
the surface from the user's (tau, both directions, from the manifest), whether the class was
accepted and why not, and an independent label check on what was written: every label-0 point
within tau of the class's normal mesh (open3d distance, not anomalygen's labeler), the largest
distance of a normal sample's points to the USER'S surface (file coordinates through the
manifest's scale and centre), and the smallest share of a removal sample's labelled points beyond
tau (recomputed).

    python benchmarks/user_meshes.py --packages /tmp/meshpkgs --out /tmp/user-meshes
    python benchmarks/user_meshes.py ... --max-repair-tau 100   # what the repairs make of the refused ones
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np

PYVISTA = "pyvista==0.49.2"
DEBS = ("libcgal-demo", "assimp-testmodels")
CGAL = "cgal/data/meshes"
ASSIMP = "deb/usr/share/assimp/models"
PV = "pyvista/pyvista/examples"
MESHES = {  # class -> file under the unpacked packages
    "ant": f"{PV}/ant.ply", "airplane": f"{PV}/airplane.ply", "nut": f"{PV}/nut.ply",
    "anchor": f"{CGAL}/anchor.off", "rotor": f"{CGAL}/rotor.off", "pinion": f"{CGAL}/pinion.off",
    "spool": f"{CGAL}/spool.off", "coupling": f"{CGAL}/couplingdown.off", "fandisk": f"{CGAL}/fandisk.off",
    "cheese": f"{CGAL}/cheese.off", "shark": f"{CGAL}/mech-holes-shark.off",
    "elephant": f"{CGAL}/elephant-with-holes.off", "blade": f"{CGAL}/blade.off", "pig": f"{CGAL}/pig.stl",
    "spider": f"{ASSIMP}/STL/Spider_binary.stl", "wuson": f"{ASSIMP}/STL/Wuson.stl",
    "maxexport": f"{ASSIMP}/STL/3DSMaxExport.STL",
}


def fetch(root: Path) -> None:
    """Download and unpack the three packages into `root` (skipped when already there)."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "deb").is_dir():
        debs = root / "debs"
        debs.mkdir(exist_ok=True)
        subprocess.run(["apt-get", "download", *DEBS], cwd=debs, check=True)
        for d in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg-deb", "-x", str(d), str(root / "deb")], check=True)
    if not (root / "cgal").is_dir():
        with tarfile.open(root / "deb/usr/share/doc/libcgal-dev/data.tar.gz") as t:
            t.extractall(root / "cgal", filter="data")
    if not (root / "pyvista").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PYVISTA, "-d", str(root / "wheels")],
                       check=True)
        whl = next((root / "wheels").glob("pyvista-*.whl"))
        with zipfile.ZipFile(whl) as z:
            z.extractall(root / "pyvista", [n for n in z.namelist() if n.startswith("pyvista/examples/") and n.endswith(".ply")])


def versions() -> str:
    out = []
    for p in DEBS:
        r = subprocess.run(["apt-cache", "policy", p], capture_output=True, text=True).stdout
        cand = next((ln.split()[-1] for ln in r.splitlines() if "Candidate" in ln), "?")
        out.append(f"{p} {cand}")
    return ", ".join(out + [PYVISTA])


def label_check(out: Path, man: dict, src: Path) -> dict:
    """Per class: label-0 misses / label-0 points, largest normal-sample distance to the user's file
    surface (tau), smallest recomputed share beyond tau of a removal sample."""
    import open3d as o3d
    import trimesh

    from anomalygen.io import open_dataset

    ds = open_dataset(out)
    tau = man["labels"]["tau"]
    res = {}
    for cls in ds.classes():
        info = man["classes"][cls]
        normal = trimesh.load(out / "obj" / cls / f"{cls}_template0.obj", force="mesh", process=False)
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(normal.vertices, np.float32)),
                            o3d.core.Tensor(np.asarray(normal.faces, np.uint32)))
        user = trimesh.load(src / info["file"], force="mesh")
        uscene = o3d.t.geometry.RaycastingScene()
        uscene.add_triangles(o3d.core.Tensor(np.asarray(user.vertices, np.float32)),
                             o3d.core.Tensor(np.asarray(user.faces, np.uint32)))
        D = float(np.linalg.norm(normal.extents))
        miss = zeros = 0
        to_user, shares = 0.0, []
        for ref in ds.samples(cls):
            s = ref.load()
            lab = s.labels.astype(bool)
            d = scene.compute_distance(o3d.core.Tensor(s.points[~lab].astype(np.float32))).numpy()
            miss += int((d > tau * D * 1.0001).sum())
            zeros += int((~lab).sum())
            if not s.anomalous:
                file_pts = s.points / info["scale"] + np.asarray(info["center"])
                du = uscene.compute_distance(o3d.core.Tensor(file_pts.astype(np.float32))).numpy()
                to_user = max(to_user, float(du.max() * info["scale"] / tau))
            elif s.defect in ("hole", "break", "crack"):
                dl = scene.compute_distance(o3d.core.Tensor(s.points[lab].astype(np.float32))).numpy()
                shares.append(float((dl > tau * D).mean()))
        res[cls] = {"label0_misses": miss, "label0_points": zeros, "good_to_user_tau": round(to_user, 2),
                    "min_removal_share": round(min(shares), 3) if shares else None, "samples": len(ds.samples(cls))}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packages", default="/tmp/anomalygen-meshpkgs", help="where the packages are fetched and unpacked")
    ap.add_argument("--out", default="/tmp/anomalygen-user-meshes")
    ap.add_argument("--train", type=int, default=1)
    ap.add_argument("--test", type=int, default=10)
    ap.add_argument("--max-repair-tau", type=float, default=None, help="shapes.max_repair_tau (default: the recipe's)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    from anomalygen.builds.shapenet import build_dataset
    from anomalygen.recipes import load_recipe
    from anomalygen.validate import validate_dataset

    pk, out = Path(a.packages), Path(a.out)
    fetch(pk)
    src = out / "src"
    shutil.rmtree(out, ignore_errors=True)
    for cls, rel in MESHES.items():
        (src / cls).mkdir(parents=True)
        shutil.copy(pk / rel, src / cls / Path(rel).name)
    recipe = load_recipe("anomaly-shapenet")
    recipe["dataset"]["write_meshes"] = "normal"
    if a.max_repair_tau is not None:
        recipe["shapes"]["max_repair_tau"] = a.max_repair_tau
    la0, t0 = os.getloadavg(), time.perf_counter()
    res = build_dataset(out / "ds", recipe, source=src, classes=list(MESHES), train_per_class=a.train,
                        test_per_class=a.test, workers=a.workers)
    wall = time.perf_counter() - t0
    man = json.loads((out / "ds" / "manifest.json").read_text())
    ok = validate_dataset(out / "ds").ok
    checks = label_check(out / "ds", man, src)
    print(f"packages: {versions()}; recipe anomaly-shapenet, shapes.max_repair_tau="
          f"{recipe['shapes']['max_repair_tau']}; {a.train} train + {a.test} test per class; workers {a.workers}")
    import resource

    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(f"build {wall:.0f} s wall ({1000 * wall / max(len(res.stats), 1):.0f} ms per written sample, repairs "
          f"included), peak RSS of one process {peak / 1024:.0f} MiB, load average {la0[0]:.1f} before / "
          f"{os.getloadavg()[0]:.1f} after; validate: {'ok' if ok else 'FAILED'}; samples written {len(res.stats)}, "
          f"refused {len(res.out_of_range)}")
    print("| class | file | repair | distance to source (tau: user->repaired / repaired->user) | accepted? | "
          "label-0 misses | normal samples to user's surface (tau) | min removal share beyond tau |")
    print("|---|---|---|---|---|---|---|---|")
    rejected = man.get("rejected_classes", {})
    for cls, rel in MESHES.items():
        info = man["classes"].get(cls, {})
        if cls in rejected:
            why = rejected[cls].split(": ", 1)[-1]
            print(f"| {cls} | {rel.split('/')[-1]} | | | refused: {why} | | | |")
            continue
        d = info.get("repair_distance_tau")
        c = checks.get(cls, {})
        print(f"| {cls} | {rel.split('/')[-1]} | {info.get('repair')}{' (' + '+'.join(info['repair_steps']) + ')' if info.get('repair_steps') else ''} | "
              f"{'%g / %g' % (d['user_to_repaired'], d['repaired_to_user']) if d else '0 (as-is)'} | yes | "
              f"{c.get('label0_misses')} / {c.get('label0_points')} | {c.get('good_to_user_tau')} | "
              f"{c.get('min_removal_share')} |")


if __name__ == "__main__":
    main()
