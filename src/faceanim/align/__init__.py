"""Face alignment: detect a face, crop it the FFHQ way for the generator, and paste generated frames back."""

from faceanim.align.ffhq import (
    AlignedFace,
    Face,
    FaceAligner,
    aligned_to_source_matrix,
    default_landmarks_path,
    ffhq_quad,
    paste_back,
    warp_quad,
)

__all__ = [
    "AlignedFace",
    "Face",
    "FaceAligner",
    "aligned_to_source_matrix",
    "default_landmarks_path",
    "ffhq_quad",
    "paste_back",
    "warp_quad",
]
