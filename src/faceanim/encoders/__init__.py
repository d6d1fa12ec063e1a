"""Pretrained encoders: CLIP (image and text) for conditioning the motion model and for the losses."""

from faceanim.encoders.clip import CLIPConfig, CLIPEncoder, default_cache_dir

__all__ = ["CLIPConfig", "CLIPEncoder", "default_cache_dir"]
