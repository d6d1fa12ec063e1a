"""CLIP towers of our own, in open_clip's state-dict layout (so its checkpoints and our ``model.safetensors``
files load into them unchanged), built from plain PyTorch modules: loading a shipped bundle imports neither
open_clip nor torchvision nor timm.

    CLIPModel                    image tower ``visual`` + text tower (token_embedding, positional_embedding,
                                 transformer, ln_final, text_projection) + logit_scale
      ModifiedResNet             3-conv stem, 4 stages of Bottleneck blocks (anti-aliased: avg-pool before strided
                                 convolutions), AttentionPool2d (a class query over the final grid)
      VisionTransformer          patch convolution, class token, pre/post LayerNorm, Transformer, projection
      Transformer                ResidualAttentionBlock × layers (pre-norm attention + MLP, optional LayerScale)

They cover the architectures open_clip builds from its plain config fields (OpenAI's RN50…RN50x64, ViT-B/L,
our ToonFace CLIP). :func:`unsupported` names a config field these towers do not implement (then
:class:`faceanim.encoders.clip.CLIPEncoder` builds open_clip's model instead). Attention runs through
``torch.nn.MultiheadAttention`` / ``F.multi_head_attention_forward``, as in open_clip, so the numbers are the
same to the bit on CPU.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Image normalization of OpenAI's CLIP (per channel, on [0, 1] images): the default of every CLIPConfig.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# open_clip 3.3's config fields (CLIPVisionCfg / CLIPTextCfg) with their defaults: the vocabulary of our
# config.json files. Fields outside IMPLEMENTED must keep their default for our towers to be used.
VISION_DEFAULTS: dict[str, Any] = {
    "layers": 12, "width": 768, "head_width": 64, "mlp_ratio": 4.0, "patch_size": 16, "image_size": 224,
    "ls_init_value": None, "patch_dropout": 0.0, "attentional_pool": False, "attn_pooler_queries": 256,
    "attn_pooler_heads": 8, "no_ln_pre": False, "pos_embed_type": "learnable", "final_ln_after_pool": False,
    "pool_type": "tok", "output_tokens": False, "act_kwargs": None, "norm_kwargs": None, "block_type": None,
    "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False,
    "scale_attn": False, "scale_fc": False, "timm_model_name": None, "timm_model_pretrained": False,
    "timm_pool": "avg", "timm_proj": "linear", "timm_proj_bias": False, "timm_drop": 0.0, "timm_drop_path": None,
}
TEXT_DEFAULTS: dict[str, Any] = {
    "context_length": 77, "vocab_size": 49408, "hf_tokenizer_name": None, "tokenizer_mode": None,
    "tokenizer_kwargs": None, "width": 512, "heads": 8, "layers": 12, "mlp_ratio": 4.0, "ls_init_value": None,
    "embed_cls": False, "pad_id": 0, "eos_id": 2, "no_causal_mask": False, "final_ln_after_pool": False,
    "pool_type": "argmax", "proj_bias": False, "proj_type": "linear", "output_tokens": False, "act_kwargs": None,
    "norm_kwargs": None, "block_type": None, "qk_norm": False, "scaled_cosine_attn": False, "scale_heads": False,
    "scale_attn_inner": False, "scale_attn": False, "scale_fc": False, "hf_model_name": None,
    "hf_model_pretrained": True, "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler",
}
# Text-tower fields that do not change CLIP.encode_text: tokenizer choices (ours is OpenAI's BPE whatever they
# say, as before), the pad id, final_ln_after_pool (open_clip's CLIP ignores it for the text tower) and the
# fields only a Hugging Face tower reads.
_TEXT_IGNORED = {"hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs", "pad_id", "final_ln_after_pool",
                 "hf_model_pretrained", "hf_proj_type", "hf_pooler_type"}
IMPLEMENTED = {
    "vision": {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "ls_init_value",
               "no_ln_pre", "final_ln_after_pool", "pool_type", "block_type", "timm_model_pretrained", "timm_pool",
               "timm_proj", "timm_proj_bias", "timm_drop", "timm_drop_path", "attn_pooler_queries",
               "attn_pooler_heads"},
    "text": {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "ls_init_value", "eos_id",
             "no_causal_mask", "pool_type", "proj_bias", "proj_type", "block_type"} | _TEXT_IGNORED,
}


def unsupported(vision_cfg: dict[str, Any], text_cfg: dict[str, Any]) -> str | None:
    """Why these towers cannot build the architecture (e.g. ``"vision_cfg.attentional_pool=True"``), or None."""
    for label, cfg, defaults, kind in (("vision_cfg", vision_cfg, VISION_DEFAULTS, "vision"),
                                       ("text_cfg", text_cfg, TEXT_DEFAULTS, "text")):
        for key, value in cfg.items():
            if key not in defaults or (key not in IMPLEMENTED[kind] and value != defaults[key]):
                return f"{label}.{key}={value!r}"
        if cfg.get("block_type") not in (None, "default"):
            return f"{label}.block_type={cfg['block_type']!r}"
    layers = vision_cfg.get("layers", VISION_DEFAULTS["layers"])
    if isinstance(layers, (list, tuple)) and len(layers) != 4:
        return f"vision_cfg.layers={layers!r} (a ModifiedResNet has 4 stages)"
    if vision_cfg.get("pool_type", "tok") not in ("tok", "avg"):
        return f"vision_cfg.pool_type={vision_cfg['pool_type']!r}"
    if text_cfg.get("pool_type", "argmax") not in ("argmax", "first", "last", "eos"):
        return f"text_cfg.pool_type={text_cfg['pool_type']!r}"
    if text_cfg.get("proj_type", "linear") not in ("linear", "none"):
        return f"text_cfg.proj_type={text_cfg['proj_type']!r}"
    return None


# ------------------------------------------------------------------------------------------------ building blocks
class QuickGELU(nn.Module):
    """x·σ(1.702 x), the activation OpenAI's CLIPs were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` of a residual branch (CaiT); parameter name as in open_clip."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x)); tokens ``[B, L, width]``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, act: type[nn.Module],
                 ls_init_value: float | None) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ls_1 = LayerScale(width, ls_init_value) if ls_init_value is not None else nn.Identity()
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, hidden), gelu=act(), c_proj=nn.Linear(hidden, width)))
        self.ls_2 = LayerScale(width, ls_init_value) if ls_init_value is not None else nn.Identity()

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        mask = attn_mask.to(y.dtype) if attn_mask is not None else None
        x = x + self.ls_1(self.attn(y, y, y, need_weights=False, attn_mask=mask)[0])
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """``layers`` residual attention blocks of ``width`` channels and ``heads`` heads."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 act: type[nn.Module] = nn.GELU, ls_init_value: float | None = None) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, act, ls_init_value) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x

    def get_cast_dtype(self) -> torch.dtype:
        return self.resblocks[0].mlp.c_fc.weight.dtype


# ------------------------------------------------------------------------------------------------ ModifiedResNet
class Bottleneck(nn.Module):
    """1×1 → 3×3 → (avg-pool when strided) → 1×1 ×4 channels, plus a shortcut (avg-pool → 1×1 conv → BN when the
    shape changes)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != out:  # keys downsample.0 (conv) and downsample.1 (BN), as in open_clip
            pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
            self.downsample = nn.Sequential(OrderedDict([
                ("pool", pool), ("0", nn.Conv2d(inplanes, out, 1, bias=False)), ("1", nn.BatchNorm2d(out))
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self.avgpool(y)))
        y += x if self.downsample is None else self.downsample(x)
        return self.act3(y)


class AttentionPool2d(nn.Module):
    """Multi-head attention of one query (the grid's mean) over the ``grid²`` cells + the mean, with a learnt
    position embedding; ``[B, C, g, g]`` → ``[B, output_dim]``."""

    def __init__(self, grid: int, embed_dim: int, heads: int, output_dim: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, embed_dim))
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).permute(2, 0, 1)                      # [g², B, C]
        x = torch.cat([x.mean(dim=0, keepdim=True), x])        # [1 + g², B, C]
        x = x + self.positional_embedding[:, None].to(x.dtype)
        out, _ = F.multi_head_attention_forward(
            query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias, training=self.training,
            need_weights=False, use_separate_proj_weight=True,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
        )
        return out[0]


class ModifiedResNet(nn.Module):
    """CLIP's ResNet image tower: ``[B, 3, S, S]`` → ``[B, output_dim]`` (S divisible by 32)."""

    def __init__(self, layers: list[int], output_dim: int, heads: int, image_size: int = 224, width: int = 64) -> None:
        super().__init__()
        self.output_dim, self.image_size = output_dim, image_size
        half = width // 2
        self.conv1 = nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(half)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(half, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.act3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        for i, blocks in enumerate(layers):
            planes = width * 2**i
            stage = [Bottleneck(inplanes, planes, stride=1 if i == 0 else 2)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.attnpool = AttentionPool2d(image_size // 32, width * 32, heads, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.act3(self.bn3(self.conv3(x)))
        x = self.avgpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


# ------------------------------------------------------------------------------------------------ ViT
class VisionTransformer(nn.Module):
    """CLIP's ViT image tower: patches + class token → Transformer → pooled token @ proj, ``[B, output_dim]``."""

    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int, mlp_ratio: float,
                 output_dim: int, act: type[nn.Module] = nn.GELU, ls_init_value: float | None = None,
                 no_ln_pre: bool = False, pool_type: str = "tok", final_ln_after_pool: bool = False) -> None:
        super().__init__()
        grid = image_size // patch_size
        self.image_size, self.patch_size, self.grid_size = (image_size, image_size), (patch_size, patch_size), (grid, grid)
        self.output_dim, self.pool_type, self.final_ln_after_pool = output_dim, pool_type, final_ln_after_pool
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(grid * grid + 1, width))
        self.ln_pre = nn.Identity() if no_ln_pre else nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, ls_init_value)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, output_dim))

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:].mean(dim=1) if self.pool_type == "avg" else x[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x).flatten(2).transpose(1, 2)           # [B, grid², width]
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        pooled = self.ln_post(self._pool(x)) if self.final_ln_after_pool else self._pool(self.ln_post(x))
        return pooled @ self.proj


# ------------------------------------------------------------------------------------------------ CLIP
class CLIPModel(nn.Module):
    """Image and text towers with open_clip ``CLIP``'s attribute names, parameter names and ``encode_*`` methods.

    Args mirror :class:`faceanim.encoders.clip.CLIPConfig`: ``vision_cfg`` with a list of 4 ``layers`` builds a
    ModifiedResNet, an int a ViT; ``quick_gelu`` picks QuickGELU over GELU. Weights are left uninitialized
    (``torch.empty``): these towers are for loading trained weights (open_clip builds models to train from scratch).
    """

    def __init__(self, embed_dim: int, vision_cfg: dict[str, Any], text_cfg: dict[str, Any], quick_gelu: bool = False) -> None:
        super().__init__()
        reason = unsupported(vision_cfg, text_cfg)
        if reason is not None:
            raise ValueError(f"faceanim's CLIP towers do not implement {reason}")
        v = {**VISION_DEFAULTS, **vision_cfg}
        t = {**TEXT_DEFAULTS, **text_cfg}
        act = QuickGELU if quick_gelu else nn.GELU
        if isinstance(v["layers"], (list, tuple)):
            self.visual = ModifiedResNet(list(v["layers"]), embed_dim, heads=v["width"] * 32 // v["head_width"],
                                         image_size=v["image_size"], width=v["width"])
        else:
            self.visual = VisionTransformer(
                v["image_size"], v["patch_size"], v["width"], v["layers"], v["width"] // v["head_width"],
                v["mlp_ratio"], embed_dim, act, v["ls_init_value"], v["no_ln_pre"], v["pool_type"],
                v["final_ln_after_pool"],
            )
        width = t["width"]
        self.context_length, self.vocab_size = t["context_length"], t["vocab_size"]
        self.text_pool_type, self.text_eos_id = t["pool_type"], t["eos_id"]
        self.transformer = Transformer(width, t["layers"], t["heads"], t["mlp_ratio"], act, t["ls_init_value"])
        self.token_embedding = nn.Embedding(self.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(self.context_length, width))
        self.ln_final = nn.LayerNorm(width)
        if t["proj_type"] == "none" or not embed_dim:
            self.text_projection = None
        elif t["proj_bias"]:
            self.text_projection = nn.Linear(width, embed_dim)
        else:
            self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.register_buffer("attn_mask", None if t["no_causal_mask"] else causal_mask(self.context_length),
                             persistent=False)
        self.logit_scale = nn.Parameter(torch.empty(()))

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Normalized images ``[B, 3, S, S]`` → ``[B, embed_dim]`` (unit-norm if ``normalize``)."""
        features = self.visual(image)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Token ids ``[B, context_length]`` → ``[B, embed_dim]``, read at the end token (the highest id)."""
        dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(text).to(dtype) + self.positional_embedding.to(dtype)
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        rows = torch.arange(x.shape[0], device=x.device)
        if self.text_pool_type == "argmax":
            x = x[rows, text.argmax(dim=-1)]
        elif self.text_pool_type == "eos":
            x = x[rows, (text == self.text_eos_id).int().argmax(dim=-1)]
        else:
            x = x[:, 0] if self.text_pool_type == "first" else x[:, -1]
        if isinstance(self.text_projection, nn.Linear):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit-norm image and text features and ``logit_scale.exp()``, as open_clip's CLIP returns them."""
        return self.encode_image(image, normalize=True), self.encode_text(text, normalize=True), self.logit_scale.exp()


def causal_mask(n: int) -> torch.Tensor:
    """Additive ``[n, n]`` mask: 0 on and below the diagonal, -inf above (token i sees tokens ≤ i)."""
    return torch.full((n, n), float("-inf")).triu_(1)
