"""Training data the detectors read lazily: sample references in, one sample at a time out.

`fit()` takes sample references (`anomalygen.io.SampleRef`, cheap: paths + metadata),
already loaded samples, or any torch `Dataset` whose items are samples. `SampleDataset`
puts the three behind one torch Dataset, and `iterate_samples` reads it through a
DataLoader with worker processes, so a train split is never held in memory as a whole
and file reading overlaps the detector's own work.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from anomalygen.errors import AnomalygenError
from anomalygen.io import mvtec3d
from anomalygen.io.samples import ImageSample, PointSample, Sample, SampleRef

KINDS = ("points", "images")


def sample_kind(sample: Sample) -> str:
    """'points' for an unorganized cloud, 'images' for an organized (H,W,3) one."""
    if isinstance(sample, PointSample):
        return "points"
    if isinstance(sample, ImageSample):
        return "images"
    raise TypeError(f"not a sample: {type(sample).__name__}")


def ref_kind(ref: SampleRef) -> str:
    return "images" if ref.layout == mvtec3d.LAYOUT else "points"


def _first_item(batch: list):
    """DataLoader collate for batch_size=1 that keeps the sample object as it is."""
    return batch[0]


class SampleDataset:
    """A torch-style map Dataset of samples over references, loaded samples or another Dataset.

    Items are loaded on access (`SampleRef.load()`), so workers read files in parallel and
    only the samples in flight are in memory. `kind` is known without loading anything
    when the items are references."""

    def __init__(self, train):
        if isinstance(train, SampleDataset):
            self.items, self._kind = train.items, train._kind
            return
        self.items = train if hasattr(train, "__getitem__") and hasattr(train, "__len__") else list(train)
        self._kind: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample:
        item = self.items[i]
        return item.load() if isinstance(item, SampleRef) else item

    @property
    def kind(self) -> str:
        """'points' or 'images'; AnomalygenError when references of both kinds are mixed."""
        if self._kind is None:
            if len(self) == 0:
                raise AnomalygenError("no training samples")
            if isinstance(self.items, (list, tuple)) and all(isinstance(r, SampleRef) for r in self.items):
                kinds = {ref_kind(r) for r in self.items}
                if len(kinds) > 1:
                    raise AnomalygenError("training samples mix point clouds and images")
                self._kind = kinds.pop()
            else:
                self._kind = sample_kind(self[0])
        return self._kind


def iterate_samples(dataset: SampleDataset, workers: int = 0, kind: str | None = None) -> Iterator[Sample]:
    """Samples of `dataset` in order, read by a DataLoader with `workers` processes.

    With `kind`, a sample of the other kind is an AnomalygenError (a torch Dataset cannot
    be checked up front without loading all of it)."""
    from torch.utils.data import DataLoader

    if workers > 0 and len(dataset) > 1:
        loader: Sequence | DataLoader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                                                   collate_fn=_first_item)
    else:
        loader = (dataset[i] for i in range(len(dataset)))
    for sample in loader:
        if kind is not None and sample_kind(sample) != kind:
            raise AnomalygenError("training samples mix point clouds and images")
        yield sample
