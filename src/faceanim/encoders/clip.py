"""CLIP image/text encoder, loadable offline from OpenAI archives, open_clip state dicts and our native folders.

A native folder (``config.json`` + ``model.safetensors``, e.g. a bundle's) loads into our own towers
(:mod:`faceanim.encoders.clip_model`) and tokenizer (:mod:`faceanim.encoders.tokenizer`): running a bundle
imports neither open_clip, torchvision nor timm. open_clip reads OpenAI/open_clip checkpoints and architecture
names and builds the models we train from scratch (:meth:`CLIPEncoder.from_config`); both give the same numbers
on the same weights, and the same token ids.

The motion model is conditioned by one CLIP (the paper's code: RN50, fine-tuned) and the
contrastive loss reads another (ViT-B/32, frozen); each is its own :class:`CLIPEncoder`.
Nothing here downloads: pretrained weights are files the user brings (see :func:`default_cache_dir`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from faceanim.encoders.clip_model import OPENAI_MEAN, OPENAI_STD, TEXT_DEFAULTS, VISION_DEFAULTS, CLIPModel, unsupported
from faceanim.encoders.tokenizer import BPETokenizer, get_tokenizer
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.data.prompts import apply_template
from faceanim.utils.init import no_weight_init
from faceanim.utils.io import check_state_dict, load_weights, read_config, save_pretrained

KIND = "clip"
BPE_VOCAB_SIZE = 49408  # OpenAI BPE (faceanim.encoders.tokenizer, = open_clip's SimpleTokenizer): 2 × 256 bytes + 48894 merges + 2 special tokens
IMPLS = ("open_clip", "faceanim")  # who builds the towers: open_clip's CLIP, or faceanim.encoders.clip_model
OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")  # ints stored beside the weights
_UNSUPPORTED = {  # open_clip features that need another tokenizer/tower or a download
    "hf_model_name": "Hugging Face text towers",
    "hf_tokenizer_name": "Hugging Face tokenizers",
    "timm_model_name": "timm image towers",
    "custom_text": "CustomTextCLIP layouts",
    "init_logit_bias": "SigLIP models",
    "multimodal_cfg": "CoCa models",
}


def default_cache_dir() -> Path:
    """Where bare model names ("RN50") are looked up: ``$FACEANIM_HOME/clip``, else ``~/.cache/faceanim/clip``."""
    home = os.environ.get("FACEANIM_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "faceanim") / "clip"


@dataclass
class CLIPConfig:
    """An open_clip CLIP architecture plus its image normalization; saved as ``config.json``."""

    embed_dim: int                        # width D of the joint image-text embedding
    vision_cfg: dict[str, Any]            # open_clip CLIPVisionCfg fields: layers ([4] = ModifiedResNet, int = ViT), width, patch_size, image_size, …
    text_cfg: dict[str, Any]              # open_clip CLIPTextCfg fields: context_length, vocab_size, width, heads, layers, …
    name: str = "custom"                  # architecture label ("RN50", "ViT-B-32", or ours)
    quick_gelu: bool = False              # QuickGELU activations (True for OpenAI-trained weights)
    mean: tuple[float, float, float] = OPENAI_MEAN  # per-channel mean of the [0, 1] input image
    std: tuple[float, float, float] = OPENAI_STD    # per-channel std of the [0, 1] input image

    def __post_init__(self) -> None:
        # A JSON round trip makes configs built in code equal to configs read from disk (tuples → lists).
        self.vision_cfg = json.loads(json.dumps(self.vision_cfg))
        self.text_cfg = json.loads(json.dumps(self.text_cfg))
        self.mean = tuple(float(x) for x in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(x) for x in self.std)  # type: ignore[assignment]
        if not isinstance(self.embed_dim, int) or self.embed_dim <= 0:
            raise CheckpointError(f"CLIP embed_dim must be a positive integer, got {self.embed_dim!r}")
        for label, cfg, known in (("vision_cfg", self.vision_cfg, VISION_DEFAULTS), ("text_cfg", self.text_cfg, TEXT_DEFAULTS)):
            unknown = sorted(set(cfg) - set(known))
            if unknown:  # a field of a newer open_clip? (asked only then: importing open_clip takes seconds)
                unknown = sorted(set(unknown) - _open_clip_fields(label))
            if unknown:
                raise CheckpointError(f"CLIP {label} has unknown fields {unknown}")
            for key, what in _UNSUPPORTED.items():
                if cfg.get(key):
                    raise CheckpointError(f"CLIP {label}.{key} is set: {what} are not supported")
        if not isinstance(self.image_size, int) or self.image_size <= 0:
            raise CheckpointError(f"CLIP image_size must be one positive integer, got {self.image_size!r}")
        vocab = self.text_cfg.get("vocab_size", TEXT_DEFAULTS["vocab_size"])
        if vocab < BPE_VOCAB_SIZE:
            raise CheckpointError(f"CLIP vocab_size {vocab} is smaller than the OpenAI BPE vocabulary ({BPE_VOCAB_SIZE})")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise CheckpointError("CLIP mean and std must have 3 entries each, std > 0")

    @property
    def image_size(self) -> int:
        """Side of the square image the visual tower reads."""
        return self.vision_cfg.get("image_size", VISION_DEFAULTS["image_size"])

    @property
    def context_length(self) -> int:
        """Number of text tokens, start and end tokens included."""
        return self.text_cfg.get("context_length", TEXT_DEFAULTS["context_length"])

    @classmethod
    def from_open_clip(cls, arch: str, quick_gelu: bool | None = None) -> "CLIPConfig":
        """The config of an architecture shipped with open_clip ("RN50", "ViT-B-32", "ViT-B/32"); offline."""
        open_clip = _open_clip()
        name = arch.replace("/", "-")
        cfg = open_clip.get_model_config(name)
        if cfg is None:
            shown = ", ".join([m for m in open_clip.list_models() if m.startswith(("RN", "ViT-B"))][:8])
            raise CheckpointError(f"unknown CLIP architecture {arch!r}; open_clip knows e.g. {shown}, … (open_clip.list_models())")
        extra = [k for k in cfg if k in _UNSUPPORTED]
        if extra:
            raise CheckpointError(f"CLIP architecture {arch!r} uses {_UNSUPPORTED[extra[0]]}, which are not supported")
        qg = cfg.get("quick_gelu", False) if quick_gelu is None else quick_gelu
        return cls(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"], name=name, quick_gelu=qg)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "CLIPConfig":
        """Build from a ``config.json`` payload; unknown or missing fields raise CheckpointError."""
        try:
            return cls(**payload)
        except TypeError as exc:
            raise CheckpointError(f"invalid CLIP config ({exc})") from None


class CLIPEncoder(nn.Module):
    """A CLIP (``self.model``: open_clip's ``CLIP`` or our :class:`~faceanim.encoders.clip_model.CLIPModel`, same
    parameter names and ``encode_*`` methods) with our image preprocessing, prompt templating and checkpoint formats.

    Modules built by the constructors are in eval mode. Parameters stay trainable (the paper
    fine-tunes the conditioning CLIP); freeze a loss CLIP with ``requires_grad_(False)``. Note that
    ``train()`` switches a ResNet tower's BatchNorm to batch statistics, as for any nn.Module.

    ``impl``: "open_clip" (default: open_clip builds and initializes the towers, as for training from scratch) or
    "faceanim" (our towers, weights uninitialized until loaded; what :meth:`from_pretrained` uses for native folders).
    """

    def __init__(self, config: CLIPConfig, impl: str = "open_clip") -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        self.config, self.impl = config, impl
        try:
            if impl == "faceanim":
                self.model = CLIPModel(config.embed_dim, config.vision_cfg, config.text_cfg, config.quick_gelu)
            else:
                open_clip = _open_clip()
                self.model = open_clip.model.CLIP(
                    embed_dim=config.embed_dim,
                    vision_cfg=open_clip.model.CLIPVisionCfg(**config.vision_cfg),
                    text_cfg=open_clip.model.CLIPTextCfg(**config.text_cfg),
                    quick_gelu=config.quick_gelu,
                )
        except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
            raise CheckpointError(f"{impl} cannot build CLIP {config.name!r} ({exc})") from None
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.origin = f"{_describe_choice(config)} (built in code)"  # what was chosen and why; set by the loaders
        self.eval()

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_config(cls, config: CLIPConfig | dict[str, Any]) -> "CLIPEncoder":
        """Randomly initialized CLIP of the given architecture (for our own small CLIPs and tests)."""
        return cls(config if isinstance(config, CLIPConfig) else CLIPConfig.from_dict(config))

    @classmethod
    def from_pretrained(
        cls, src: str | os.PathLike, arch: str | None = None, cache_dir: str | os.PathLike | None = None
    ) -> "CLIPEncoder":
        """Load CLIP weights from a file, a native folder or a bare model name; never downloads, never runs the file.

        Args:
            src: one of
                - an OpenAI TorchScript archive (``RN50.pt``, ``ViT-B-32.pt``), read without running it
                  (:mod:`faceanim.convert.torchscript`); the architecture comes from the weights' shapes unless
                  ``arch`` is given, the activation from the archive's modules (OpenAI's: QuickGELU);
                - an open_clip/PyTorch state dict (``.pt``, ``.bin``, ``.safetensors``); one in OpenAI's layout
                  with its ``input_resolution``/``context_length``/``vocab_size`` entries gets QuickGELU, any other
                  needs ``arch`` (its activation cannot be told from the weights);
                - a native folder written by :meth:`save_pretrained`;
                - a bare name ("RN50", "ViT-B-32", "ViT-B/32") looked up as ``<name>.pt`` or folder
                  ``<name>/`` in ``cache_dir`` (default :func:`default_cache_dir`); the name finds the file, it does
                  not choose the activation.
            arch: an open_clip architecture ("ViT-B-32": its own activation unless the file
                tells; "ViT-B-32-quickgelu": QuickGELU), or just the activation ("quickgelu" / "gelu", the
                architecture read from the weights). The choice made is in :attr:`origin`.
            cache_dir: where bare names are looked up.

        Raises:
            CheckpointError: missing, unreadable, truncated or non-CLIP file, weights that do not match the
                architecture, or a file that does not tell its activation and no ``arch``; the message is one line.
        """
        path = Path(src)
        if not path.exists():
            path = _cached_path(str(src), cache_dir)
        if path.is_dir():
            config = CLIPConfig.from_dict(read_config(path, KIND))
            # Our towers when they implement the architecture (all that open_clip builds from plain fields).
            impl = "faceanim" if unsupported(config.vision_cfg, config.text_cfg) is None else "open_clip"
            with no_weight_init():  # every weight comes from the file (checked by _load_into)
                encoder = cls(config, impl=impl)
            _load_into(encoder.model, load_weights(path), path)
            encoder.origin = f"{_describe_choice(config)} (from {path.name}/config.json)"
            return encoder
        state_dict, told, why = _read_state_dict(path)
        config, origin = _choose_config(state_dict, told, why, arch, path)
        encoder = cls(config)
        _load_into(encoder.model, state_dict, path)
        encoder.origin = origin
        return encoder

    @classmethod
    def from_spec(cls, spec: Any, cache_dir: str | os.PathLike | None = None) -> "CLIPEncoder":
        """A CLIP from a config value (YAML ``cond_clip`` / ``loss_clip``): a path or cache name; a mapping
        ``{path: RN50.pt, arch: RN50-quickgelu}`` (``arch`` as in :meth:`from_pretrained`); or an architecture
        mapping (``embed_dim``, ``vision_cfg``, ``text_cfg``, …: randomly initialized)."""
        if isinstance(spec, dict) and "path" in spec:
            extra = sorted(set(spec) - {"path", "arch"})
            if extra:
                raise FaceanimError(f"CLIP entry {spec!r}: unknown keys {extra} (use path and arch)")
            return cls.from_pretrained(str(spec["path"]), arch=spec.get("arch"), cache_dir=cache_dir)
        if isinstance(spec, dict):
            encoder = cls.from_config(spec)
            encoder.origin = f"{_describe_choice(encoder.config)} (randomly initialized from the config)"
            return encoder
        return cls.from_pretrained(str(spec), cache_dir=cache_dir)

    def with_image_size(self, image_size: int) -> "CLIPEncoder":
        """A copy that reads ``image_size`` px images: every weight kept, the image tower's position embedding
        (ViT: ``visual.positional_embedding``; ModifiedResNet: ``visual.attnpool.positional_embedding``, one row
        per cell of the final feature grid after the class row) resampled bicubically to the new grid. For
        fine-tuning a small CLIP at a higher resolution than it was trained at."""
        config = dataclasses.replace(self.config, vision_cfg={**self.config.vision_cfg, "image_size": image_size})
        with no_weight_init():
            out = type(self)(config, impl=self.impl)
        target = out.model.state_dict()
        state = {}
        for key, value in self.model.state_dict().items():
            if key.endswith("positional_embedding") and key.startswith("visual.") and value.shape != target[key].shape:
                value = _resample_grid_embedding(value, target[key].shape[0] - 1)
            state[key] = value
        out.model.load_state_dict(state)
        return out.to(self.device).train(self.training)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (no pickle), loadable by :meth:`from_pretrained`."""
        return save_pretrained(folder, self.config, self.model.state_dict(), kind=KIND)

    # ----------------------------------------------------------------- properties
    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def context_length(self) -> int:
        return self.config.context_length

    @property
    def device(self) -> torch.device:
        return self.mean.device

    # ----------------------------------------------------------------- encoding
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Generator images ``[B, 3, H, W]`` in [-1, 1] → CLIP input ``[B, 3, S, S]``, S = image_size.

        Mirrors CLIP's PIL preprocessing on tensors, differentiably: map to [0, 1], resize the
        shorter side to S (bicubic, antialiased like PIL's), center-crop S×S, normalize with
        mean/std. No clamping, so gradients also reach pixels outside [-1, 1].
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise FaceanimError(f"expected images of shape [B, 3, H, W], got {list(images.shape)}")
        x = (images.to(self.mean.dtype) + 1) / 2
        s = self.image_size
        h, w = x.shape[-2:]
        if min(h, w) != s:
            # Same output size rule as torchvision's Resize(int): shorter side → s, longer side truncated.
            size = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
            h, w = size
        top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
        x = x[..., top : top + s, left : left + s]
        return (x - self.mean) / self.std

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed generator images ``[B, 3, H, W]`` in [-1, 1] (any H, W) → ``[B, D]``, unit-norm if ``normalize``."""
        return self.model.encode_image(self.preprocess(images), normalize=normalize)

    def tokenize(self, prompts: list[str], template: str | None = None) -> torch.Tensor:
        """Template and tokenize ``prompts`` → token ids ``[B, context_length]`` (long, on the encoder's device).

        Raises:
            FaceanimError: no prompts, an empty prompt, or a prompt longer than the context (never truncated).
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        if len(prompts) == 0:
            raise FaceanimError("no prompts given")
        texts = [apply_template(p, template) for p in prompts]
        tokenizer = _tokenizer()
        for text in texts:
            n = len(tokenizer.encode(text)) + 2  # + start and end tokens
            if n > self.context_length:
                raise FaceanimError(
                    f"prompt too long for CLIP {self.config.name!r}: {n} tokens, limit {self.context_length} ({text[:60]!r}…)"
                )
        return tokenizer(texts, self.context_length).to(self.device)

    def encode_text(self, prompts: list[str], template: str | None = None, normalize: bool = True) -> torch.Tensor:
        """Embed prompts → ``[B, D]``, unit-norm if ``normalize``; ``template`` as in :func:`faceanim.data.prompts.apply_template`."""
        return self.model.encode_text(self.tokenize(prompts, template), normalize=normalize)

    def extra_repr(self) -> str:
        return (f"name={self.config.name!r}, embed_dim={self.embed_dim}, image_size={self.image_size}, "
                f"context_length={self.context_length}, impl={self.impl!r}")


@lru_cache(maxsize=4)
def _resample_grid_embedding(pos: torch.Tensor, cells: int) -> torch.Tensor:
    """``[1 + g², C]`` (a class row, then a g×g grid row by row) → ``[1 + cells, C]``, the grid resampled bicubically
    (``cells`` must be a square)."""
    g, n = math.isqrt(pos.shape[0] - 1), math.isqrt(cells)
    if g * g != pos.shape[0] - 1 or n * n != cells:
        raise CheckpointError(f"cannot resample a position embedding of {pos.shape[0]} rows to {cells + 1}")
    grid = pos[1:].T.reshape(1, pos.shape[1], g, g).float()
    grid = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], grid.reshape(pos.shape[1], n * n).T.to(pos.dtype)])


def _tokenizer() -> BPETokenizer:
    """OpenAI's BPE tokenizer (open_clip's ids, vocabulary shipped with faceanim), shared by all encoders."""
    return get_tokenizer()


def _open_clip():
    """The open_clip module, imported on first need (it imports torchvision and timm: seconds)."""
    try:
        import open_clip
    except ImportError as exc:
        raise FaceanimError(f"open_clip is needed here (pip install open_clip_torch): {exc}") from None
    return open_clip


@lru_cache(maxsize=2)
def _open_clip_fields(label: str) -> frozenset[str]:
    """Field names of the installed open_clip's CLIPVisionCfg / CLIPTextCfg (empty without open_clip)."""
    try:
        from open_clip.model import CLIPTextCfg, CLIPVisionCfg
    except ImportError:
        return frozenset()
    return frozenset(f.name for f in dataclasses.fields(CLIPVisionCfg if label == "vision_cfg" else CLIPTextCfg))


def _known_arch(name: str) -> str | None:
    """open_clip's spelling of a built-in architecture name ("ViT-B/32" → "ViT-B-32"), or None."""
    arch = name.replace("/", "-")
    return arch if _open_clip().get_model_config(arch) is not None else None


def _cached_path(name: str, cache_dir: str | os.PathLike | None) -> Path:
    """Resolve a bare model name to ``<cache>/<name>.pt`` or ``<cache>/<name>/``; anything else must exist."""
    stem = _known_arch(name) or name
    if "/" in stem or os.sep in stem or Path(stem).suffix in {".pt", ".pth", ".bin", ".safetensors"}:
        raise CheckpointError(f"CLIP checkpoint not found: {name}")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for candidate in (folder / f"{stem}.pt", folder / stem):
        if candidate.exists():
            return candidate
    raise CheckpointError(
        f"CLIP weights {name!r} not found: put OpenAI's {stem}.pt (or a folder saved by faceanim) in {folder}, "
        "set FACEANIM_HOME, or pass a file path (faceanim never downloads)"
    )


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], bool | None, str]:
    """Read tensors from a TorchScript archive (without running it), a safetensors file or a ``torch.save`` file
    (weights only). Returns ``(state_dict, quick_gelu the contents tell or None, why)``."""
    from faceanim.convert.torchscript import is_torchscript_archive, read_torchscript

    if not path.is_file():
        raise CheckpointError(f"CLIP checkpoint not found: {path}")
    bad = f"{path} is not a readable CLIP checkpoint"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _tell_from_layout(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{bad} (safetensors: {exc})") from None
    if is_torchscript_archive(path):
        archive = read_torchscript(path)
        kinds = {c.rsplit(".", 1)[-1] for c in archive.classes}
        if "QuickGELU" in kinds:
            return archive.state_dict, True, "from the OpenAI archive: its QuickGELU modules"
        if "GELU" in kinds:
            return archive.state_dict, False, "from the archive: its GELU modules"
        return archive.state_dict, True, "from the OpenAI archive: OpenAI trained with QuickGELU"
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated/foreign files raise RuntimeError, UnpicklingError, EOFError, KeyError…
        detail = (str(exc).splitlines() or [""])[0][:120]
        raise CheckpointError(
            f"{bad}: not a TorchScript archive, torch.save file or safetensors file, or truncated "
            f"({type(exc).__name__}: {detail})"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict of tensors")
    if all(k.startswith("module.") for k in obj):  # saved from DistributedDataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return _tell_from_layout(obj)


def _tell_from_layout(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool | None, str]:
    """OpenAI's own state dicts carry ``input_resolution``, ``context_length`` and ``vocab_size``: QuickGELU."""
    if all(k in sd for k in OPENAI_EXTRA_KEYS):
        return sd, True, "from the OpenAI state dict: its input_resolution/context_length/vocab_size entries"
    return sd, None, ""


ACTIVATIONS = {"quickgelu": True, "gelu": False}


def _describe_choice(config: "CLIPConfig") -> str:
    return f"CLIP {config.name}, {'QuickGELU' if config.quick_gelu else 'GELU'}"


def _choose_config(sd: dict[str, torch.Tensor], told: bool | None, why: str, arch: str | None,
                   path: Path) -> tuple["CLIPConfig", str]:
    """The architecture and activation of a checkpoint file, and a line saying what was chosen and why."""
    spec = (arch or "").strip()
    if spec.lower() in ACTIVATIONS:                     # only the activation: the architecture from the shapes
        config = _config_from_openai_state_dict(sd, name=path.stem, source=path)
        config = dataclasses.replace(config, quick_gelu=ACTIVATIONS[spec.lower()])
        return config, f"{_describe_choice(config)} (as asked; architecture read from the weights)"
    if spec:
        explicit = spec.lower().endswith("-quickgelu")
        config = CLIPConfig.from_open_clip(spec, quick_gelu=None if explicit or told is None else told)
        reason = "as asked" if explicit or told is None else why
        return config, f"{_describe_choice(config)} ({reason}; architecture {spec} as asked)"
    config = _config_from_openai_state_dict(sd, name=path.stem, source=path)  # not a CLIP at all: says so first
    if told is None:
        raise CheckpointError(f"{path}: the file does not tell its CLIP activation (GELU or QuickGELU): give the "
                              f"architecture (--clip-arch / arch: e.g. ViT-B-32, RN50-quickgelu, or quickgelu)")
    config = dataclasses.replace(config, quick_gelu=told)
    return config, f"{_describe_choice(config)} ({why})"


def _config_from_openai_state_dict(sd: dict[str, torch.Tensor], name: str, source: Path) -> CLIPConfig:
    """Read the architecture of a CLIP in OpenAI's layout from its tensor shapes.

    Same rules as open_clip's ``build_model_from_openai_state_dict`` (heads = width // 64), which we
    do not call because it casts the weights to float16 and so would round fine-tuned fp32 weights.
    """

    def count(prefix: str) -> int:
        return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})

    try:
        if "visual.proj" in sd:  # ViT
            width, _, patch, _ = sd["visual.conv1.weight"].shape
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = {"layers": count("visual.transformer.resblocks."), "width": width, "patch_size": patch, "image_size": patch * grid}
        else:  # ModifiedResNet: 4 stages, attention pooling over a (image_size / 32)² grid
            grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = {
                "layers": [count(f"visual.layer{i}.") for i in range(1, 5)],
                "width": sd["visual.layer1.0.conv1.weight"].shape[0],
                "patch_size": None,
                "image_size": grid * 32,
            }
        text_width = sd["ln_final.weight"].shape[0]
        text = {
            "context_length": sd["positional_embedding"].shape[0],
            "vocab_size": sd["token_embedding.weight"].shape[0],
            "width": text_width,
            "heads": max(text_width // 64, 1),
            "layers": count("transformer.resblocks."),
        }
        embed_dim = sd["text_projection"].shape[1]
    except (KeyError, ValueError, IndexError) as exc:
        missing = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
        raise CheckpointError(
            f"{source} is not a CLIP in OpenAI's layout ({missing}); for an open_clip checkpoint pass arch=..."
        ) from None
    return CLIPConfig(embed_dim=int(embed_dim), vision_cfg=vision, text_cfg=text, name=name, quick_gelu=True)


def _load_into(model: nn.Module, state_dict: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``state_dict`` into ``model`` (float tensors → the model's dtype); any mismatch → one-line CheckpointError."""
    expected = model.state_dict()
    sd = {k: v for k, v in state_dict.items() if k not in OPENAI_EXTRA_KEYS}
    # Buffers rebuilt by the model (e.g. the causal attn_mask, stored by traced archives).
    sd = {k: v for k, v in sd.items() if k in expected or k.split(".")[-1] != "attn_mask"}
    check_state_dict(expected, sd, str(source), "CLIP architecture")
    cast = {k: v.to(expected[k].dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(cast, strict=False)
