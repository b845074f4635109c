"""beamwatch model package: named Keras architectures, their custom layers, losses and compile.

Importing the package registers every architecture and every custom layer/loss, which is also
what lets `keras.saving.load_model(path, safe_mode=True)` load a saved beamwatch model.
"""

from model import architectures, zoo  # noqa: F401  (registers the builders)
from model.compile import compile_model
from model.encoding import EncodeOnce, split_encode_once
from model.layers import (
    AttentionPooling,
    FeatureWiseAffine,
    HistoryMask,
    PerTraceNormalization,
    PulseTrend,
    ReferenceDistanceScore,
    ReferenceReduction,
    SiameseEncoder,
    SplitSlots,
)
from model.losses import BinaryFocalLoss, ContrastiveLoss, make_loss
from model.registry import InputSpec, build_model, list_models, register_model

__all__ = [
    "AttentionPooling",
    "BinaryFocalLoss",
    "ContrastiveLoss",
    "EncodeOnce",
    "FeatureWiseAffine",
    "HistoryMask",
    "InputSpec",
    "PerTraceNormalization",
    "PulseTrend",
    "ReferenceDistanceScore",
    "ReferenceReduction",
    "SiameseEncoder",
    "SplitSlots",
    "build_model",
    "compile_model",
    "list_models",
    "make_loss",
    "register_model",
    "split_encode_once",
]
