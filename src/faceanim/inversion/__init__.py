"""Inversion of real faces into the W+ space of the frozen StyleGAN2: the e4e encoder, the optimization
projector, and :class:`Inverter`, which picks between them (e4e when an encoder is available); photos and folders
of photos → code files in :mod:`faceanim.inversion.folders`.

Names load on first use, so that a command's checks (:mod:`faceanim.inversion.folders`) run before torch loads.
"""

from importlib import import_module

_FROM = {
    "faceanim.inversion.e4e": ("E4EConfig", "E4EInverter", "Encoder4Editing", "encoder_config", "is_e4e_checkpoint",
                               "load_e4e", "load_encoder"),
    "faceanim.inversion.inverter": ("METHODS", "InversionResult", "Inverter"),
    "faceanim.inversion.projector": ("CLIPFeatureDistance", "ProjectionResult", "ProjectorConfig",
                                     "default_perceptual", "project"),
}
_WHERE = {name: module for module, names in _FROM.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'faceanim.inversion' has no attribute {name!r}")
