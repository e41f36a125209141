"""What a detector run trains and tests: tasks, each (training classes -> test class).

'bowl0' in the usual protocol (train and test on one class), 'bagel->carrot' in the
zero-shot protocol of 3DzAL (train on one class, test on another). Tasks sharing their
training classes share one model (models/<model_key>).

Task-irrelevant classes (3DzAL's leave-one-out): for a detector that synthesizes pseudo
anomalies from other classes (`Detector.uses_irrelevant`), a task also names the classes
it may draw them from: every class of the dataset other than its training and test classes.
The model then depends on the test class too, so such a zero-shot task has its own model
(models/<train>-for-<test>); for every other detector the list stays empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from anomalygen.errors import AnomalygenError
from anomalygen.limits import class_list


@dataclass
class Task:
    """own_model: the task trains a model of its own even when another task shares its training classes
    (a detector that also learns from the task-irrelevant classes, which differ per test class)."""

    name: str
    train: list[str]
    test: str
    irrelevant: list[str] = field(default_factory=list)  # classes the detector may draw pseudo anomalies from

    @property
    def model_key(self) -> str:
        key = "+".join(self.train)
        return f"{key}-for-{self.test}" if self.irrelevant and self.test not in self.train else key

    def as_dict(self) -> dict:
        d = {"name": self.name, "train": self.train, "test": self.test, "model": f"models/{self.model_key}"}
        return {**d, "irrelevant": self.irrelevant} if self.irrelevant else d

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        return cls(d["name"], list(d["train"]), d["test"], list(d.get("irrelevant", [])))


def split_classes(value: str | Sequence[str] | None, option: str = "--classes") -> list[str] | None:
    """'a,b' or ['a', 'b'] -> ['a', 'b']; None or nothing named -> None; a class named twice is refused
    (anomalygen.limits.class_list, the rule of every command)."""
    return class_list(value, option)


def plan_tasks(dataset, classes=None, train_classes=None, test_classes=None, irrelevant: bool = False) -> list[Task]:
    """Per-class tasks, or zero-shot tasks (train on `train_classes`, test on each of `test_classes`).
    irrelevant: name each task's task-irrelevant classes (the dataset's others; see the module doc)."""
    known = dataset.classes()
    if not known:
        raise AnomalygenError(f"{dataset.root}: dataset holds no classes")
    classes, train_classes, test_classes = (split_classes(v, o) for v, o in (
        (classes, "--classes"), (train_classes, "--train-class"), (test_classes, "--test-class")))
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
    if irrelevant:
        for t in tasks:
            t.irrelevant = [c for c in known if c not in t.train and c != t.test]
    for t in tasks:
        for c in t.train:
            if not dataset.samples(c, "train"):
                raise AnomalygenError(f"class {c!r}: empty train split in {dataset.root}")
        if not dataset.samples(t.test, "test"):
            raise AnomalygenError(f"class {t.test!r}: empty test split in {dataset.root}")
    return tasks
