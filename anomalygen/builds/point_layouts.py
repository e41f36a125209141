"""The point-cloud layouts `build-shapenet` writes: a sample's file names and paths in each.

    anomaly-shapenet: pcd/<class>/train/<class>_template<k>.pcd, test/<n>_<defect>.pcd,
                      GT/<n>_<defect>.txt (comma), <n>_positive.pcd = normal
    real3d-ad:        <class>/train/<k>_template.pcd, test/<n>_<type>.pcd,
                      gt/<n>_<type>.txt (space), <n>_good.pcd = normal

Real3D-AD names its anomaly types bulge, sink, cut and copy. Ours map where the meaning
is the same (bulge -> bulge, concavity -> sink, material removed by hole and break -> cut);
bending, crack and scratch have no Real3D-AD counterpart and keep their names. The manifest
records the defect under our name beside the file name, so nothing is lost by the mapping.
Meshes go to obj/<class>/<name>.obj in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anomalygen.errors import AnomalygenError
from anomalygen.io import anomaly_shapenet as asn
from anomalygen.io import real3d
from anomalygen.io.samples import GOOD, PointSample

REAL3D_TYPE = {"bulge": "bulge", "concavity": "sink", "hole": "cut", "break": "cut"}


@dataclass(frozen=True)
class PointOutput:
    """Where one layout puts a sample's files, relative to the build's output folder."""

    name: str
    classes_dir: str  # folder holding the class folders ("" = the output folder itself)
    gt_dir: str

    def sample_name(self, cls: str, split: str, index: int, defect: str = GOOD) -> str:
        if self.name == real3d.LAYOUT:
            return real3d.sample_name(cls, split, index, REAL3D_TYPE.get(defect, defect))
        return asn.sample_name(cls, split, index, defect)

    def classes_root(self, out: Path) -> Path:
        return Path(out) / self.classes_dir if self.classes_dir else Path(out)

    def write_sample(self, out: Path, sample: PointSample, binary: bool) -> None:
        writer = real3d.Real3DADDataset if self.name == real3d.LAYOUT else asn.AnomalyShapeNetDataset
        writer.write_sample(self.classes_root(out), sample, binary=binary)

    def sample_files(self, out: Path, cls: str, split: str, name: str, anomalous: bool) -> list[Path]:
        """The files a finished sample has in this layout (its .pcd, and the GT text when anomalous)."""
        base = self.classes_root(out) / cls
        files = [base / split / f"{name}.pcd"]
        if split == "test" and anomalous:
            files.append(base / self.gt_dir / f"{name}.txt")
        return files



POINT_OUTPUTS = {
    asn.LAYOUT: PointOutput(asn.LAYOUT, "pcd", "GT"),
    real3d.LAYOUT: PointOutput(real3d.LAYOUT, "", "gt"),
}


def point_output(layout: str) -> PointOutput:
    """The output layout named `layout`, or one clear error naming the choices."""
    if layout not in POINT_OUTPUTS:
        raise AnomalygenError(f"--layout {layout!r}: use one of {', '.join(POINT_OUTPUTS)}")
    return POINT_OUTPUTS[layout]
