"""Inversion of real faces into the W+ space of the frozen StyleGAN2: the e4e encoder, the optimization
projector, and :class:`Inverter`, which picks between them (e4e when an encoder is available)."""

from faceanim.inversion.e4e import (E4EConfig, E4EInverter, Encoder4Editing, encoder_config, is_e4e_checkpoint, load_e4e,
                                   load_encoder)
from faceanim.inversion.inverter import METHODS, InversionResult, Inverter
from faceanim.inversion.projector import (
    CLIPFeatureDistance,
    ProjectionResult,
    ProjectorConfig,
    default_perceptual,
    project,
)

__all__ = [
    "CLIPFeatureDistance",
    "E4EConfig",
    "E4EInverter",
    "Encoder4Editing",
    "InversionResult",
    "Inverter",
    "METHODS",
    "ProjectionResult",
    "ProjectorConfig",
    "default_perceptual",
    "encoder_config",
    "is_e4e_checkpoint",
    "load_e4e",
    "load_encoder",
    "project",
]
