"""Inference pipelines with one ``__call__`` (diffusers-style)."""

from faceanim.pipelines.animation import AnimationOutput, AnimationPipeline

__all__ = ["AnimationOutput", "AnimationPipeline"]
