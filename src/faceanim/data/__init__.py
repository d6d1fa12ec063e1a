"""Training data: prompt lists, image + inverted-latent folders, sampled latents, a resumable batch sampler."""

from faceanim.data.latents import ImageLatentDataset, SampledLatents, load_latents
from faceanim.data.prompts import load_prompts
from faceanim.data.sampler import StepBatchSampler

__all__ = ["ImageLatentDataset", "SampledLatents", "StepBatchSampler", "load_latents", "load_prompts"]
