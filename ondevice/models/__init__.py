"""ADN models: gates (the one definition), the registry, and the architectures."""

from . import mobilenetv2_adn, resnet_adn, swin_adn, vit_adn  # noqa: F401  (registers the builders)
from ._registry import build_model, list_models, model_description, register_model
from .adn import AdnModel, AdnStage, InputSpec, n_mandatory
from .gates import GATES_DTYPE, Gates, GatesLike, all_gates, base_net, covering_gates, gates_tensor, super_net
from .segments import Segment, Segments, model_segments

__all__ = [
    "GATES_DTYPE",
    "AdnModel",
    "AdnStage",
    "Gates",
    "GatesLike",
    "InputSpec",
    "Segment",
    "Segments",
    "all_gates",
    "base_net",
    "build_model",
    "covering_gates",
    "gates_tensor",
    "list_models",
    "model_description",
    "model_segments",
    "n_mandatory",
    "register_model",
    "super_net",
]
