"""MVTec 3D-AD layout (FORMATS.md):

    <class>/{train,validation}/good/{rgb/NNN.png, xyz/NNN.tiff}
    <class>/test/<good|defect>/{rgb/NNN.png, xyz/NNN.tiff, gt/NNN.png}
    <class>/calibration/camera_parameters.json   (optional)

xyz: H x W x 3 float32 metres, all-zero where invalid; gt: 8-bit, 255 = anomalous.
We write no gt for good samples (FORMATS.md) and read a missing gt as all zeros there.

What a reader refuses, in one place for every reader and `anomalygen validate` (`xyz_problem`,
`mask_problem`): an xyz TIFF of an integer type or with coordinates no scene in metres has
(millimetres read as metres would train and score silently wrong), and an anomalous test
sample whose gt mask is missing or empty (it would be scored as all normal pixels).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from anomalygen.errors import FormatError
from anomalygen.io._paths import natural_key, subdirs
from anomalygen.io.atomic import all_or_nothing, atomic_path, write_text_atomic
from anomalygen.io.samples import GOOD, Dataset, ImageSample, SampleRef

LAYOUT = "mvtec3d-ad"
SPLITS = ("train", "validation", "test")
CLASSES = ("bagel", "cable_gland", "carrot", "cookie", "dowel", "foam", "peach", "potato", "rope", "tire")


def sample_name(index: int) -> str:
    return f"{index:03d}"


# metres: farther than any bench scanner sees; a scan in millimetres is far beyond it (z ~ 100-1000)
PLAUSIBLE_XYZ_M = 50.0


def xyz_problem(xyz: np.ndarray) -> str | None:
    """Why an xyz image as stored is not MVTec 3D-AD's float32 metres, or None."""
    if xyz.dtype.kind != "f":
        return (f"xyz TIFF holds {xyz.dtype} values, but MVTec 3D-AD xyz is float32 metres; convert it first "
                "(e.g. from millimetres: xyz.astype(numpy.float32) / 1000)")
    big = float(np.max(np.abs(xyz), where=np.isfinite(xyz), initial=0.0))
    if big > PLAUSIBLE_XYZ_M:
        return (f"coordinates up to {big:.6g}, but MVTec 3D-AD xyz is in metres (a bench scan lies within "
                f"{PLAUSIBLE_XYZ_M:g} m); millimetres? divide by 1000")
    return None


def mask_problem(ref: SampleRef, mask: np.ndarray | None) -> str | None:
    """Why a sample's gt (`mask`: as read, None when it has no gt file) contradicts its folder, or None."""
    anomalous = ref.anomalous and ref.split == "test"
    if anomalous and mask is None:
        return f"anomalous sample without its gt mask ({ref.defect}/gt/{ref.name}.png missing)"
    if mask is None:
        return None
    if anomalous and not np.any(mask):
        return "anomalous sample with an empty gt mask"
    if not anomalous and np.any(mask):
        return "normal sample with a non-empty gt mask"
    return None


def read_xyz_tiff(path: str | os.PathLike) -> np.ndarray:
    """An xyz image as float32 metres; FormatError naming the file when it is unreadable or not
    float metres (`xyz_problem`)."""
    try:
        xyz = tifffile.imread(str(path))
    except Exception:  # tifffile raises several types on corrupt input; its wording names its internals
        raise FormatError(f"{path}: unreadable TIFF (expected an H x W x 3 float32 xyz image; the file is "
                          "corrupt, truncated or another format)") from None
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise FormatError(f"{path}: xyz TIFF must be H x W x 3, got {xyz.shape}")
    problem = xyz_problem(xyz)
    if problem:
        raise FormatError(f"{path}: {problem}")
    return xyz.astype(np.float32, copy=False)


def read_png(path: str | os.PathLike) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im)
    except (UnidentifiedImageError, OSError):
        raise FormatError(f"{path}: unreadable PNG (the file is corrupt, truncated or another format)") from None


def read_mask_png(path: str | os.PathLike) -> np.ndarray:
    m = read_png(path)
    if m.ndim == 3:
        m = m[..., 0]
    return (m > 0).astype(np.uint8)


def _load(ref: SampleRef) -> ImageSample:
    f = ref.files
    xyz = read_xyz_tiff(f["xyz"])
    rgb = read_png(f["rgb"]) if "rgb" in f else None
    if rgb is not None and rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    mask = read_mask_png(f["gt"]) if "gt" in f else None
    problem = mask_problem(ref, mask)
    if problem:
        raise FormatError(f"{f.get('gt', f['xyz'])}: {problem}")  # the words of MVTec3DDataset.missing
    if mask is None:
        mask = np.zeros(xyz.shape[:2], np.uint8)
    return ImageSample(xyz=xyz, rgb=rgb, mask=mask, cls=ref.cls, split=ref.split,
                       defect=ref.defect, name=ref.name, path=f["xyz"])


class MVTec3DDataset(Dataset):
    layout = LAYOUT

    def classes(self) -> list[str]:
        return [d.name for d in subdirs(self.root) if any((d / s).is_dir() for s in SPLITS)]

    def _scan_class(self, cls: str) -> list[SampleRef]:
        refs = []
        for split in SPLITS:
            for ddir in subdirs(self.root / cls / split):
                for xyz in sorted((ddir / "xyz").glob("*.tiff"), key=natural_key):
                    files = {"xyz": xyz}
                    for kind in ("rgb", "gt"):
                        p = ddir / kind / f"{xyz.stem}.png"
                        if p.is_file():
                            files[kind] = p
                    refs.append(SampleRef(LAYOUT, cls, split, ddir.name, xyz.stem, files, _load))
        return refs

    def missing(self, ref: SampleRef) -> str | None:
        problem = mask_problem(ref, None) if "gt" not in ref.files else None
        return f"{ref.files['xyz']}: {problem}" if problem else None

    def camera_parameters(self, cls: str) -> dict | None:
        p = self.root / cls / "calibration" / "camera_parameters.json"
        return json.loads(p.read_text()) if p.is_file() else None


def write_sample(root: str | os.PathLike, sample: ImageSample) -> dict[str, Path]:
    """Write xyz .tiff, rgb .png and (anomalous test samples) gt .png, each atomically."""
    if not sample.name:
        raise ValueError("sample.name is required (see sample_name())")
    xyz = np.asarray(sample.xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must be H x W x 3, got {xyz.shape}")
    base = Path(root) / sample.cls / sample.split / sample.defect
    rgb = None if sample.rgb is None else np.asarray(sample.rgb)
    if rgb is not None and rgb.shape[:2] != xyz.shape[:2]:
        raise ValueError(f"rgb {rgb.shape} and xyz {xyz.shape} differ in size")
    mask = np.asarray(sample.mask) if sample.split == "test" and sample.defect != GOOD else None
    if mask is not None and mask.shape != xyz.shape[:2]:
        raise ValueError(f"mask {mask.shape} and xyz {xyz.shape} differ in size")
    out = {"xyz": base / "xyz" / f"{sample.name}.tiff"}
    if rgb is not None:
        out["rgb"] = base / "rgb" / f"{sample.name}.png"
    if mask is not None:
        out["gt"] = base / "gt" / f"{sample.name}.png"
    with all_or_nothing(out.values()):  # a fault mid-sample leaves none of its files
        with atomic_path(out["xyz"]) as tmp:
            tifffile.imwrite(tmp, xyz.astype(np.float32, copy=False), photometric="rgb")
        if rgb is not None:
            with atomic_path(out["rgb"]) as tmp:
                Image.fromarray(rgb.astype(np.uint8)).save(tmp)
        if mask is not None:
            with atomic_path(out["gt"]) as tmp:
                Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8), mode="L").save(tmp)
    return out


def write_camera_parameters(root: str | os.PathLike, cls: str, params: dict) -> Path:
    return write_text_atomic(Path(root) / cls / "calibration" / "camera_parameters.json", json.dumps(params, indent=2))
