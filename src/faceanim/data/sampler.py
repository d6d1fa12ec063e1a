"""A batch sampler addressed by step number: exactly resumable and split across distributed ranks."""

from __future__ import annotations

import torch


class StepBatchSampler:
    """Batch ``k`` of rank ``r`` is a pure function of (seed, k, r).

    Items (images, or sampled-latent seeds) are drawn without replacement from a per-epoch permutation of
    ``num_items`` shared by all ranks, each rank taking a disjoint slice (a distributed sampler); prompts are
    ``batch_size`` distinct entries of the prompt list (texts in a batch never repeat, as the contrastive
    loss requires). Resuming at step k therefore continues exactly where an uninterrupted run would be.
    """

    def __init__(self, num_items: int, num_prompts: int, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        if batch_size > num_prompts:
            raise ValueError(f"batch size {batch_size} needs at least as many distinct prompts, "
                             f"the prompt list has {num_prompts}")
        if num_items < batch_size * world_size:
            raise ValueError(f"{num_items} training items cannot fill a global batch of {batch_size * world_size}")
        self.num_items, self.num_prompts, self.batch_size = num_items, num_prompts, batch_size
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def batch(self, step: int) -> tuple[list[int], list[int]]:
        """(item indices, prompt indices) for this rank at ``step``; both of length ``batch_size``."""
        global_bs = self.batch_size * self.world_size
        per_epoch = self.num_items // global_bs
        epoch, pos = divmod(step, per_epoch)
        perm = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        start = pos * global_bs + self.rank * self.batch_size
        items = perm[start:start + self.batch_size].tolist()
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + step) * 1_009 + self.rank)
        prompts = torch.randperm(self.num_prompts, generator=g)[: self.batch_size].tolist()
        return items, prompts
