"""What a detector run trains and tests: tasks, each (training classes -> test class).

'bowl0' in the usual protocol (train and test on one class), 'bagel->carrot' in the
zero-shot protocol of 3DzAL (train on one class, test on another). Tasks sharing their
training classes share one model (models/<model_key>), unless the detector also learns from
the task-irrelevant classes (own_model: models/<train>__<test>).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from anomalygen.errors import AnomalygenError


@dataclass
class Task:
    """own_model: the task trains a model of its own even when another task shares its training classes
    (a detector that also learns from the task-irrelevant classes, which differ per test class)."""

    name: str
    train: list[str]
    test: str
    own_model: bool = False

    @property
    def model_key(self) -> str:
        key = "+".join(self.train)
        return f"{key}__{self.test}" if self.own_model and self.test not in self.train else key

    def as_dict(self) -> dict:
        d = {"name": self.name, "train": self.train, "test": self.test, "model": f"models/{self.model_key}"}
        return {**d, "own_model": True} if self.own_model else d

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(d["name"], list(d["train"]), d["test"], bool(d.get("own_model", False)))

    def irrelevant(self, classes: Sequence[str]) -> list[str]:
        """The task-irrelevant classes among `classes`: neither trained nor tested on."""
        return [c for c in classes if c not in self.train and c != self.test]


def split_classes(value: str | Sequence[str] | None) -> list[str] | None:
    """'a,b' or ['a', 'b'] -> ['a', 'b']; None or nothing named -> None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [c.strip() for c in items if c.strip()]
    return items or None


def plan_tasks(dataset, classes=None, train_classes=None, test_classes=None) -> list[Task]:
    """Per-class tasks, or zero-shot tasks (train on `train_classes`, test on each of `test_classes`)."""
    known = dataset.classes()
    if not known:
        raise AnomalygenError(f"{dataset.root}: dataset holds no classes")
    classes, train_classes, test_classes = map(split_classes, (classes, train_classes, test_classes))
    if (train_classes is None) != (test_classes is None):
        raise AnomalygenError("zero-shot mode needs both --train-class and --test-class")
    if train_classes and classes:
        raise AnomalygenError("give either --classes or --train-class/--test-class, not both")
    for c in (classes or []) + (train_classes or []) + (test_classes or []):
        if c not in known:
            raise AnomalygenError(f"class {c!r} is not in {dataset.root}; it holds: {', '.join(known)}")
    if train_classes:
        tasks = [Task(f"{'+'.join(train_classes)}->{t}", train_classes, t) for t in test_classes]
    else:
        tasks = [Task(c, [c], c) for c in (classes or known)]
    for t in tasks:
        for c in t.train:
            if not dataset.samples(c, "train"):
                raise AnomalygenError(f"class {c!r}: empty train split in {dataset.root}")
        if not dataset.samples(t.test, "test"):
            raise AnomalygenError(f"class {t.test!r}: empty test split in {dataset.root}")
    return tasks
