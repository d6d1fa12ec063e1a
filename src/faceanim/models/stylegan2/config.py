"""Typed configuration of the StyleGAN2 generator, saved as ``config.json`` beside the weights."""

from __future__ import annotations

from dataclasses import dataclass, field

from faceanim.errors import CheckpointError

MAX_RESOLUTION = 1024


@dataclass
class GeneratorConfig:
    z_dim: int = 512                      # input latent Z width
    w_dim: int = 512                      # intermediate latent W width
    c_dim: int = 0                        # conditioning label width (0 = unconditional)
    img_resolution: int = 1024            # output resolution, a power of two in [4, 1024]
    img_channels: int = 3                 # output colour channels
    channels: dict[str, int] = field(default_factory=dict)  # feature maps per resolution ("4" → 512, …); empty = channel_base rule
    channel_base: int = 32768             # NVlabs rule when `channels` is empty: min(channel_base // res, channel_max)
    channel_max: int = 512
    mapping_layers: int = 8               # depth of the mapping MLP
    mapping_lr_multiplier: float = 0.01   # equalized-LR multiplier of the mapping layers
    layer_features: int | None = None     # width of hidden mapping layers (None = w_dim)
    embed_features: int | None = None     # label embedding width when c_dim > 0 (None = w_dim)
    conv_clamp: float | None = None       # clamp conv outputs to ±X (NVlabs ADA configs use 256), None = off
    resample_filter: list[int] = field(default_factory=lambda: [1, 3, 3, 1])  # FIR taps for up-sampling
    use_noise: bool = True                # per-layer noise inputs
    w_avg_beta: float | None = 0.995      # decay of the tracked mean of W (used by truncation)

    def __post_init__(self) -> None:
        r = self.img_resolution
        if not isinstance(r, int) or r < 4 or r > MAX_RESOLUTION or r & (r - 1):
            raise CheckpointError(f"img_resolution must be a power of two between 4 and {MAX_RESOLUTION}, got {r}")
        self.channels = {str(k): int(v) for k, v in self.channels.items()}
        for res in self.block_resolutions:
            if self.channels_at(res) <= 0:
                raise CheckpointError(f"channel count at {res}x{res} must be positive")
        if min(self.z_dim, self.w_dim) <= 0 or self.c_dim < 0 or self.mapping_layers < 1:
            raise CheckpointError("z_dim, w_dim and mapping_layers must be positive and c_dim ≥ 0")

    @property
    def block_resolutions(self) -> list[int]:
        return [2 ** i for i in range(2, self.img_resolution.bit_length())]

    def channels_at(self, res: int) -> int:
        if self.channels:
            if str(res) not in self.channels:
                raise CheckpointError(f"`channels` has no entry for resolution {res}")
            return self.channels[str(res)]
        return min(self.channel_base // res, self.channel_max)

    @property
    def num_ws(self) -> int:
        """Number of W+ vectors: two per block (one for 4×4) plus the last toRGB."""
        return 2 * len(self.block_resolutions)

    @property
    def num_layers(self) -> int:
        """Number of modulated 3×3 convolutions (= number of noise inputs)."""
        return 2 * len(self.block_resolutions) - 1
