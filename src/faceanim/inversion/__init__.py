"""Inversion of real faces into the W+ space of the frozen StyleGAN2 (e4e encoder)."""

from faceanim.inversion.e4e import E4EConfig, E4EInverter, Encoder4Editing, load_e4e

__all__ = ["E4EConfig", "E4EInverter", "Encoder4Editing", "load_e4e"]
