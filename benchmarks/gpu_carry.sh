#!/usr/bin/env bash
# What benchmarks/gpu.py needs on the lent GPU machine and its image lacks, gathered into .carry/ (git ignores
# it) in one step; then prints the device tool's `run` call. Run it from the root of the checkout that the
# device tool sends (the session's own), right before that call: the project is installed there from the tree.
#
#   bash benchmarks/gpu_carry.sh            # ~45 MiB in .carry/; a few minutes (xz packs open3d's core)
#
# The machine's image (device KINDS.md) has Python 3.12, torch, Lightning, numpy, scipy, scikit-learn,
# scikit-image, matplotlib, tifffile, Pillow, PyYAML, click, tqdm, networkx. It lacks:
#   wheels   trimesh, manifold3d, fpsample, rtree (cp312 manylinux) and setuptools (to install the project)
#   open3d   open3d-cpu 0.19's wheel is 100 MB, over the 64 MiB a call carries; its compiled core alone
#            (pybind + libc++ + TBB: FPFH, normals, RANSAC, DBSCAN, raycasting) packs to ~40 MB with xz.
#            Left out: GUI resources, Open3D-ML and its ops, examples; two imports that need what is not
#            carried become optional (the Plotly/Dash viewer, Open3D-ML).
#   libs     the X11 / GL client libraries that core links against (Debian bookworm packages, unpacked
#            there into /tmp/gl and found through LD_LIBRARY_PATH; nothing is written to /).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
C=.carry
OPEN3D=open3d-cpu==0.19.0
WHEELS=(trimesh==5.2.0 manifold3d==3.5.4 fpsample==0.3.3 rtree==1.4.1 setuptools==84.2.1)  # test venv versions; fpsample: the newest with cp312 wheels
LIBS=(libx11-6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0 libgl1 libglx0 libglvnd0 libudev1)
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_28_x86_64 --platform manylinux_2_31_x86_64 --platform any)

rm -rf "$C" && mkdir -p "$C/whl" "$C/deb" "$C/tmp"
python3 -m pip download -q --no-deps "${PLATFORM[@]}" -d "$C/whl" "${WHEELS[@]}"
python3 -m pip download -q --no-deps "${PLATFORM[@]}" -d "$C/tmp" "$OPEN3D"

python3 - "$C" <<'EOF'
"""open3d's compiled core and Python files into .carry/tmp/o3d; the viewer and Open3D-ML imports made optional."""
import glob, os, sys, zipfile

carry = sys.argv[1]
drop = ("open3d/resources/", "open3d/_ml3d/", "open3d/ml/", "open3d/examples/", "open3d/tools/",
        "open3d/labextension/", "open3d/nbextension/", "open3d/cpu/open3d_torch_ops.so")
optional = {  # file: (import that needs what is not carried, the same import made optional)
    "open3d/visualization/__init__.py": (b"from .draw_plotly import draw_plotly\nfrom .draw_plotly import draw_plotly_server\n",
                                         b"try:  # Plotly / Dash viewer: not carried\n    from .draw_plotly import draw_plotly, "
                                         b"draw_plotly_server\nexcept ImportError:\n    pass\n"),
    "open3d/__init__.py": (b"\nimport open3d.ml\n", b"\ntry:  # Open3D-ML: not carried\n    import open3d.ml\n"
                                                    b"except ImportError:\n    pass\n"),
}
(wheel,) = glob.glob(os.path.join(carry, "tmp", "open3d*.whl"))
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith("open3d/") or name.endswith("/") or name.startswith(drop):
            continue
        data = z.read(info)
        if name in optional:
            old, new = optional[name]
            assert data.count(old) == 1, f"{name} changed: update benchmarks/gpu_carry.sh"
            data = data.replace(old, new)
        path = os.path.join(carry, "tmp", "o3d", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
EOF
tar -C "$C/tmp/o3d" -cf - open3d | xz -T0 -6 > "$C/open3d.tar.xz"
rm -rf "$C/tmp"

apt-get update -qq
(cd "$C/deb" && apt-get download -qq "${LIBS[@]}")
du -sh "$C" | sed 's/^/carried: /'

cat <<'EOF'

device tool call: run(carry=[".carry"], timeout_s=600, command=
set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .carry/whl/*.whl && tar -xJf .carry/open3d.tar.xz -C /tmp/site && mkdir -p /tmp/gl && for f in .carry/deb/*.deb; do dpkg -x "$f" /tmp/gl; done && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 LD_LIBRARY_PATH=/tmp/gl/usr/lib/x86_64-linux-gnu:/tmp/gl/lib/x86_64-linux-gnu && python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . && nvidia-smi -L && python3 -c "import open3d, trimesh, manifold3d, fpsample, anomalygen.detectors.engine" && python3 benchmarks/gpu.py --out /tmp/gpu --work /tmp/gpu-work --budget-minutes 8 2>&1 | tee $OUT/gpu.log; rc=$?; cp /tmp/gpu/table.md /tmp/gpu/rows.json /tmp/gpu/plan.json $OUT/ 2>/dev/null; tar czf $OUT/logs.tgz -C /tmp/gpu logs 2>/dev/null; exit $rc
)
EOF
