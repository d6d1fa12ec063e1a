"""StyleGAN2 (Karras et al. 2020) in plain PyTorch, loadable from rosinality and NVlabs checkpoints."""

from faceanim.models.stylegan2.config import GeneratorConfig
from faceanim.models.stylegan2.generator import Generator
from faceanim.models.stylegan2.synthesis import synthesize_checkpointed

__all__ = ["Generator", "GeneratorConfig", "synthesize_checkpointed"]
