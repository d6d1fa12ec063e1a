"""Face alignment: detect a face, crop it the FFHQ way for the generator, and paste generated frames back
(:mod:`faceanim.align.ffhq`); a photo → the crop a bundle takes (:mod:`faceanim.align.prepare`).

Names load on first use, so that the commands start without numpy or dlib.
"""

from importlib import import_module

_FFHQ = ("AlignedFace", "Face", "FaceAligner", "aligned_to_source_matrix", "default_landmarks_path", "ffhq_quad",
         "paste_back", "warp_quad")
__all__ = sorted(_FFHQ)


def __getattr__(name: str):
    if name in _FFHQ:
        return getattr(import_module("faceanim.align.ffhq"), name)
    raise AttributeError(f"module 'faceanim.align' has no attribute {name!r}")
