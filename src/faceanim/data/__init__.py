"""Training data and prompts: prompt files and templates, latent files, image + inverted-latent folders, sampled
latents, z-samplers, a resumable batch sampler. Names load on first use (``faceanim.data.prompts`` imports no torch)."""

from importlib import import_module

_HOME = {"ImageLatentDataset": "latents", "SampledLatents": "latents", "load_latents": "latents",
         "load_prompts": "prompts", "StepBatchSampler": "sampler"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"faceanim.data.{_HOME[name]}"), name)
    raise AttributeError(f"module 'faceanim.data' has no attribute {name!r}")
