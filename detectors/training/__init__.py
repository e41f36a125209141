"""The one training loop every neural detector shares (Lightning), and its data protocol.

A detector hands the loop four things (see anomalygen.detectors.neural.NeuralDetector):
    network   an nn.Module (tensors in, tensors out)
    items     a Dataset keyed by (epoch, index) -> dict of tensors; subclass `EpochItems`
    loss      loss(network, batch) -> {"loss": scalar tensor, other named parts to log}
    config    a `TrainConfig` (the recipe's `train:` section)
and `loop.fit_network` trains it. Importing this package does not import Lightning; the
loop module does, and only the code that trains imports it.
"""

from anomalygen.detectors.training.config import TrainConfig
from anomalygen.detectors.training.items import EpochItems

__all__ = ["EpochItems", "TrainConfig"]
