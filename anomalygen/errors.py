"""Exceptions that mean "the user gave us something wrong".

The CLI turns every AnomalygenError into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback. `Terminated` is not an error: it is how a long
training step learns of SIGTERM, and commands handle it as they handle Ctrl-C.
"""


class AnomalygenError(Exception):
    """Base class for user-facing errors (bad path, wrong layout, corrupt file, bad option)."""


class FormatError(AnomalygenError):
    """A file exists but does not hold what its format promises."""


class LayoutError(AnomalygenError):
    """A directory is not in any layout we know, or breaks the one it claims."""


class RecipeError(AnomalygenError):
    """A recipe file is missing, malformed or holds an out-of-range value."""


class MetricError(AnomalygenError, ValueError):
    """A metric cannot be computed from these inputs (one class only, NaN scores, ...)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a cluster scheduler) during training: handled as Ctrl-C is (complete epochs kept)."""
