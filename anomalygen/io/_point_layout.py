"""What Anomaly-ShapeNet and Real3D-AD share: class folders holding train/ and test/
.pcd files plus a folder of GT text files for anomalous samples. The two differ only
in names (GT vs gt, "positive" vs "good") and the GT delimiter, which subclasses set."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from anomalygen.errors import FormatError
from anomalygen.io._paths import defect_from_stem, natural_key, subdirs
from anomalygen.io.gt_txt import read_gt_txt, write_gt_txt
from anomalygen.io.pcd import ascii_columns, read_pcd_xyz, write_pcd
from anomalygen.io.samples import GOOD, Dataset, PointSample, SampleRef


def missing_gt(ref: SampleRef, gt_dir: str) -> str | None:
    """'<pcd>: why' for an anomalous sample without its GT text, else None."""
    if ref.anomalous and "gt" not in ref.files:
        return f"{ref.files['pcd']}: anomalous sample has no {gt_dir} file {ref.name}.txt"
    return None


def load_point_ref(ref: SampleRef, gt_dir: str, delimiter: str) -> PointSample:
    """Anomalous samples come from their GT text (as the public loaders read them), normal ones from the .pcd."""
    f = ref.files
    if ref.anomalous:
        if "gt" not in f:
            raise FormatError(missing_gt(ref, gt_dir))
        points, labels = read_gt_txt(f["gt"], delimiter)
        labels = labels.astype(np.uint8)
    else:
        points = read_pcd_xyz(f["pcd"])
        labels = np.zeros(len(points), np.uint8)
    return PointSample(points=points, labels=labels, cls=ref.cls, split=ref.split,
                       defect=ref.defect, name=ref.name, path=f["pcd"])


class PointLayout(Dataset):
    """A point-cloud layout: <classes_root>/<class>/{train,test}/*.pcd and <class>/<gt_dir>/*.txt."""

    gt_dir = "gt"
    delimiter = " "
    normal_test_word = GOOD  # the stem suffix a normal test sample carries

    @property
    def classes_root(self) -> Path:
        return self.root

    def classes(self) -> list[str]:
        return [d.name for d in subdirs(self.classes_root) if (d / "train").is_dir() or (d / "test").is_dir()]

    def missing(self, ref: SampleRef) -> str | None:
        return missing_gt(ref, self.gt_dir)

    def _scan_class(self, cls: str) -> list[SampleRef]:
        d = self.classes_root / cls
        # a small picklable loader (not a bound method) so refs travel cheaply to worker processes
        loader = functools.partial(load_point_ref, gt_dir=self.gt_dir, delimiter=self.delimiter)
        refs = []
        for split in ("train", "test"):
            for p in sorted((d / split).glob("*.pcd"), key=natural_key):
                defect = GOOD if split == "train" else defect_from_stem(p.stem)
                defect = GOOD if defect == self.normal_test_word else defect
                files = {"pcd": p}
                gt = d / self.gt_dir / f"{p.stem}.txt"
                if gt.is_file():
                    files["gt"] = gt
                refs.append(SampleRef(self.layout, cls, split, defect, p.stem, files, loader))
        return refs

    @classmethod
    def write_sample(cls, classes_root: str | os.PathLike, sample: PointSample, *, binary: bool = False) -> dict[str, Path]:
        """Write the .pcd and, for an anomalous test sample, its GT text (same points, same order)."""
        if not sample.name:
            raise ValueError("sample.name is required (see sample_name())")
        base = Path(classes_root) / sample.cls
        pts = np.asarray(sample.points)
        anomalous = sample.split == "test" and sample.anomalous
        # an anomalous sample's points go into the .pcd and the GT text: format the floats once, for both
        xyz = ascii_columns(pts) if anomalous and not binary and pts.dtype in (np.float32, np.float64) else None
        out = {"pcd": write_pcd(base / sample.split / f"{sample.name}.pcd", pts, binary=binary,
                                body=None if xyz is None else xyz.bytes())}
        if anomalous:
            out["gt"] = write_gt_txt(base / cls.gt_dir / f"{sample.name}.txt", pts, sample.labels, cls.delimiter, xyz)
        return out
