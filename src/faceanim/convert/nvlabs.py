"""NVlabs network pickles (stylegan2-ada-pytorch / stylegan3 ``.pkl``) → native StyleGAN2 generator.

The pickle is read by :mod:`faceanim.convert.safe_pickle`, which never runs the source code embedded in it.
NVlabs' ``G_ema`` state dict already uses the native names (``mapping.fc0.weight``, ``synthesis.b4.const``…),
so conversion is mostly flattening the nested module records; the architecture comes from the modules'
``_init_kwargs`` and attributes and is checked against the tensor shapes (the shapes win on disagreement).
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

import torch

from faceanim.convert.safe_pickle import PersistentRecord, load_pickle_file
from faceanim.errors import CheckpointError
from faceanim.models.stylegan2 import Generator, GeneratorConfig

__all__ = ["convert_nvlabs", "load_nvlabs_pkl"]

# module of the Generator class → (where it comes from, defaults that differ between the two codebases)
SUPPORTED = {
    "training.networks": ("stylegan2-ada-pytorch", {"conv_clamp": None, "w_avg_beta": 0.995}),
    "training.networks_stylegan2": ("stylegan3 repo, StyleGAN2 config", {"conv_clamp": 256, "w_avg_beta": 0.998}),
}
DEFAULT_FILTER = [1, 3, 3, 1]
_GENERATOR_ARGS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# -- picking and checking the network --------------------------------------------------------------------------

def _pick(data: Any, key: str, notes: list[str], src: str) -> PersistentRecord:
    if isinstance(data, PersistentRecord):  # a pickle of the generator alone
        notes.append(f"the pickle holds a single network, not a snapshot dict; converted it as {key}")
        return data
    if not isinstance(data, dict):
        raise CheckpointError(f"{src}: expected an NVlabs snapshot dict (G, D, G_ema…), found {type(data).__name__}")
    if key in data:
        net = data[key]
    elif key == "G_ema" and "G" in data:
        net = data["G"]
        notes.append("no G_ema in the pickle: converted the training generator 'G' (not the EMA weights "
                     "NVlabs uses for sampling)")
        key = "G"
    else:
        keys = ", ".join(sorted(map(str, data))[:8]) or "none"
        raise CheckpointError(f"{src}: no {key!r} network in the pickle (top-level keys: {keys})")
    if not isinstance(net, PersistentRecord):
        raise CheckpointError(f"{src}: {key!r} is a {type(net).__name__}, not an NVlabs network")
    return net


def _check_class(net: PersistentRecord, src: str) -> tuple[str, dict]:
    synthesis = net.submodules().get("synthesis")
    sg3_layout = isinstance(synthesis, PersistentRecord) and (
        "input" in synthesis.submodules() or synthesis.module == "training.networks_stylegan3")
    if net.module == "training.networks_stylegan3" or sg3_layout:
        kw = net.init_kwargs
        variant = "R" if kw.get("conv_kernel") == 1 or kw.get("use_radial_filters") else "T"
        raise CheckpointError(f"{src}: StyleGAN3 (alias-free) generators are not supported: found "
                              f"training.networks_stylegan3.{net.class_name} (StyleGAN3-{variant}); use a StyleGAN2 "
                              f"pickle (stylegan2-ada-pytorch, or a stylegan2-* model of the stylegan3 repo)")
    if net.class_name != "Generator" or net.module not in SUPPORTED:
        raise CheckpointError(f"{src}: unsupported network {net.qualname}; supported: training.networks.Generator "
                              f"(stylegan2-ada-pytorch) and training.networks_stylegan2.Generator (stylegan3 repo)")
    return SUPPORTED[net.module]


def _flatten(net: PersistentRecord, src: str) -> tuple[dict[str, torch.Tensor], dict[str, PersistentRecord]]:
    """Nested module records → ``{dotted name: tensor}`` (parameters and buffers) and ``{prefix: record}``."""
    tensors: dict[str, torch.Tensor] = {}
    records: dict[str, PersistentRecord] = {}
    stack: list[tuple[str, PersistentRecord]] = [("", net)]
    while stack:
        prefix, rec = stack.pop()
        if len(records) > 10000:
            raise CheckpointError(f"{src}: malformed network (too many submodules)")
        records[prefix] = rec
        for group in ("_parameters", "_buffers"):
            entries = rec.state.get(group) or {}
            if not isinstance(entries, dict):
                raise CheckpointError(f"{src}: malformed module {prefix or 'root'} ({group} is not a dict)")
            for name, value in entries.items():
                if value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise CheckpointError(f"{src}: {prefix + '.' if prefix else ''}{name} is not a tensor")
                tensors[f"{prefix}.{name}" if prefix else str(name)] = value
        for name, sub in rec.submodules().items():
            if sub is None:
                continue
            path = f"{prefix}.{name}" if prefix else str(name)
            if not isinstance(sub, PersistentRecord):
                raise CheckpointError(f"{src}: submodule {path} is a {type(sub).__name__}, not an NVlabs module")
            if sub is net or path.count(".") > 16:
                raise CheckpointError(f"{src}: malformed network (module cycle at {path})")
            stack.append((path, sub))
    return tensors, records


# -- architecture ----------------------------------------------------------------------------------------------

def _taps_from_buffer(buf: torch.Tensor) -> torch.Tensor:
    """NVlabs ``setup_filter`` output (2-D outer product or separable 1-D, normalized) → normalized 1-D taps."""
    f = buf.detach().double()
    taps = f.sum(dim=1) if f.ndim == 2 else f
    return taps / taps.sum()


def _nice_taps(taps: torch.Tensor) -> list[float] | list[int]:
    scaled = taps / taps.abs()[taps.abs() > 1e-12].min()
    rounded = scaled.round()
    if torch.allclose(scaled, rounded, atol=1e-4):
        return [int(v) for v in rounded.tolist()]
    return [float(v) for v in taps.tolist()]


def _attrs(records: dict[str, PersistentRecord], pattern: str, attr: str) -> dict[str, Any]:
    """``{prefix: state[attr]}`` for records whose prefix matches ``pattern`` and which have ``attr``."""
    rx = re.compile(pattern)
    return {p: r.state[attr] for p, r in records.items() if rx.fullmatch(p) and attr in r.state}


def _one_value(values: dict[str, Any], what: str, src: str) -> Any:
    distinct = []
    for v in values.values():
        if v not in distinct:
            distinct.append(v)
    if len(distinct) > 1:
        raise CheckpointError(f"{src}: layers use different {what} values ({', '.join(map(repr, distinct))}); "
                              f"the native generator needs one")
    return distinct[0] if distinct else None


def _infer_config(net: PersistentRecord, tensors: dict[str, torch.Tensor], records: dict[str, PersistentRecord],
                  defaults: dict, notes: list[str], src: str) -> GeneratorConfig:
    kw = net.init_kwargs
    mapping, synthesis = records.get("mapping"), records.get("synthesis")
    if mapping is None or synthesis is None:
        raise CheckpointError(f"{src}: the generator has no mapping/synthesis submodules")
    map_kw = {**(kw.get("mapping_kwargs") or {}), **mapping.init_kwargs}
    syn_kw = {**{k: v for k, v in kw.items() if k not in _GENERATOR_ARGS}, **(kw.get("synthesis_kwargs") or {}),
              **synthesis.init_kwargs}

    def need(key: str) -> torch.Tensor:
        if key not in tensors:
            raise CheckpointError(f"{src}: incomplete StyleGAN2 generator, missing {key}")
        return tensors[key]

    # Mapping network: depth and widths from the weights.
    fc = sorted(int(m.group(1)) for k in tensors if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    if not fc or fc != list(range(len(fc))):
        raise CheckpointError(f"{src}: mapping layers fc0..fcN not found or not contiguous")
    num_layers = len(fc)
    w_dim = int(need(f"mapping.fc{num_layers - 1}.weight").shape[0])
    embed_features = int(need("mapping.embed.weight").shape[0]) if "mapping.embed.weight" in tensors else 0
    c_dim = int(tensors["mapping.embed.weight"].shape[1]) if embed_features else 0
    z_dim = int(need("mapping.fc0.weight").shape[1]) - embed_features
    layer_features = int(tensors["mapping.fc0.weight"].shape[0]) if num_layers > 1 else w_dim

    # Synthesis network: resolutions and channels from the weights.
    res_found = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not res_found or res_found != [2 ** i for i in range(2, 2 + len(res_found))]:
        raise CheckpointError(f"{src}: synthesis blocks b4, b8, … not found or not contiguous (found {res_found})")
    img_resolution = res_found[-1]
    img_channels = int(need(f"synthesis.b{img_resolution}.torgb.weight").shape[0])
    channels = {4: int(need("synthesis.b4.const").shape[0])}
    for res in res_found[1:]:
        channels[res] = int(need(f"synthesis.b{res}.conv1.weight").shape[0])

    for name, found in (("z_dim", z_dim), ("c_dim", c_dim), ("w_dim", w_dim), ("img_resolution", img_resolution),
                        ("img_channels", img_channels)):
        claimed = kw.get(name)
        if isinstance(claimed, int) and claimed != found:
            notes.append(f"init kwargs say {name}={claimed} but the weights have {found}; used the weights")
    claimed_layers = map_kw.get("num_layers", 8)
    if isinstance(claimed_layers, int) and claimed_layers != num_layers:
        notes.append(f"init kwargs say mapping num_layers={claimed_layers} but the weights have {num_layers}; "
                     f"used the weights")

    # Everything not visible in shapes: module attributes first (what the network actually ran with), then kwargs.
    arch = _one_value(_attrs(records, r"synthesis\.b\d+", "architecture"), "architecture", src)
    arch = arch if arch is not None else syn_kw.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointError(f"{src}: synthesis architecture {arch!r} is not supported (only 'skip', the "
                              f"StyleGAN2 config-e/f and ADA generator)")
    for prefix in (f"synthesis.b{r}" for r in res_found):
        if f"{prefix}.torgb.weight" not in tensors:
            raise CheckpointError(f"{src}: {prefix} has no torgb layer, as the 'skip' architecture requires")

    activations = {**_attrs(records, r"mapping\.fc\d+", "activation"),
                   **_attrs(records, r"synthesis\.b\d+\.conv[01]", "activation")}
    bad_act = {p: a for p, a in activations.items() if a != "lrelu"}
    if map_kw.get("activation", "lrelu") != "lrelu" or bad_act:
        what = next(iter(bad_act.values()), map_kw.get("activation"))
        raise CheckpointError(f"{src}: activation {what!r} is not supported (StyleGAN2 uses 'lrelu')")

    lr_found = {p: _number(g) for p, g in _attrs(records, r"mapping\.fc\d+", "bias_gain").items()}
    lr_mult = _one_value(lr_found, "mapping lr_multiplier", src)
    if lr_mult is None:
        lr_mult = _number(map_kw.get("lr_multiplier", 0.01))
    if lr_mult is None or lr_mult <= 0:
        raise CheckpointError(f"{src}: mapping lr_multiplier is not a positive number")
    affine_gains = _attrs(records, r"mapping\.embed|synthesis\..*affine", "bias_gain")
    other_gains = {p: _number(g) for p, g in affine_gains.items()}
    if any(g is None or not math.isclose(g, 1.0) for g in other_gains.values()):
        raise CheckpointError(f"{src}: style/label affine layers with a learning-rate multiplier other than 1 are "
                              f"not supported")

    clamps = _attrs(records, r"synthesis\.b\d+\.(conv[01]|torgb)", "conv_clamp")
    if clamps:
        conv_clamp = _one_value(clamps, "conv_clamp", src)
    else:
        conv_clamp = syn_kw.get("conv_clamp", defaults["conv_clamp"])
    if conv_clamp is not None and (_number(conv_clamp) is None or _number(conv_clamp) <= 0):
        raise CheckpointError(f"{src}: conv_clamp must be a positive number or None, got {conv_clamp!r}")
    conv_clamp = _number(conv_clamp) if conv_clamp is not None else None

    noise_keys = [k for k in tensors if k.endswith(".noise_const")]
    num_layers_syn = 2 * len(res_found) - 1
    if noise_keys and len(noise_keys) != num_layers_syn:
        raise CheckpointError(f"{src}: only {len(noise_keys)} of {num_layers_syn} synthesis layers have noise inputs")
    use_noise = bool(noise_keys)
    if isinstance(syn_kw.get("use_noise"), bool) and syn_kw["use_noise"] != use_noise:
        notes.append(f"init kwargs say use_noise={syn_kw['use_noise']} but the weights say {use_noise}; "
                     f"used the weights")

    taps_kw = syn_kw.get("resample_filter", DEFAULT_FILTER)
    if not isinstance(taps_kw, (list, tuple)) or not all(_number(t) is not None for t in taps_kw) or not taps_kw:
        raise CheckpointError(f"{src}: resample_filter must be a list of numbers, got {taps_kw!r}")
    taps = torch.tensor([float(t) for t in taps_kw], dtype=torch.float64)
    taps = taps / taps.sum()
    filter_taps = list(taps_kw)
    # Only the filters in use: the blocks' (skip-image upsampling) and conv0's (upsampling conv). NVlabs builds
    # conv1 without the block's filter argument, so its unused buffer always holds the default [1, 3, 3, 1].
    buffers = [v for k, v in tensors.items() if re.fullmatch(r"synthesis\.b\d+(\.conv0)?\.resample_filter", k)]
    if buffers:
        from_buf = _taps_from_buffer(buffers[0])
        if any(b.shape != buffers[0].shape or not torch.allclose(b.double(), buffers[0].double()) for b in buffers):
            raise CheckpointError(f"{src}: layers use different resample filters; the native generator needs one")
        if from_buf.shape != taps.shape or not torch.allclose(from_buf, taps, atol=1e-6):
            filter_taps = _nice_taps(from_buf)
            notes.append(f"resample_filter buffers ({filter_taps}) differ from the init kwargs ({list(taps_kw)}); "
                         f"used the buffers")
    if len(filter_taps) != 4:
        raise CheckpointError(f"{src}: resample filters with {len(filter_taps)} taps are not supported (4 taps, "
                              f"e.g. [1, 3, 3, 1], only)")

    num_ws = mapping.state.get("num_ws")
    if isinstance(num_ws, int) and num_ws != 2 * len(res_found):
        raise CheckpointError(f"{src}: mapping broadcasts to {num_ws} ws, but {len(res_found)} synthesis blocks need "
                              f"{2 * len(res_found)}")

    w_avg_beta = mapping.state.get("w_avg_beta", map_kw.get("w_avg_beta", defaults["w_avg_beta"]))
    w_avg_beta = _number(w_avg_beta) if w_avg_beta is not None else None

    base, cmax = syn_kw.get("channel_base", 32768), syn_kw.get("channel_max", 512)
    rule_ok = isinstance(base, int) and isinstance(cmax, int) and all(
        min(base // res, cmax) == ch for res, ch in channels.items())
    if not rule_ok and ("channel_base" in syn_kw or "channel_max" in syn_kw):
        notes.append(f"channel counts in the weights differ from channel_base={base}/channel_max={cmax} in the "
                     f"init kwargs; used the weights")

    try:
        return GeneratorConfig(
            z_dim=z_dim, w_dim=w_dim, c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
            channels={} if rule_ok else {str(r): c for r, c in channels.items()},
            channel_base=base if rule_ok else 32768, channel_max=cmax if rule_ok else 512,
            mapping_layers=num_layers, mapping_lr_multiplier=lr_mult,
            layer_features=None if layer_features == w_dim else layer_features,
            embed_features=None if embed_features in (0, w_dim) else embed_features,
            conv_clamp=conv_clamp, resample_filter=filter_taps, use_noise=use_noise, w_avg_beta=w_avg_beta)
    except CheckpointError as exc:
        raise CheckpointError(f"{src}: {exc}") from None


# -- public API ------------------------------------------------------------------------------------------------

def load_nvlabs_pkl(path: str | os.PathLike, key: str = "G_ema", notes: list[str] | None = None
                    ) -> tuple[GeneratorConfig, dict[str, torch.Tensor]]:
    """Read the generator ``key`` of an NVlabs network pickle without running any of its code.

    Returns the native config and a float32 state dict in the NVlabs/native layout (``resample_filter``
    buffers dropped). ``mapping.w_avg`` is absent when the network tracked no W mean (``w_avg_beta=None``).
    Messages for the user (fallbacks, disagreements resolved in favour of the weights) are appended to ``notes``.
    """
    notes = [] if notes is None else notes
    src = str(path)
    net = _pick(load_pickle_file(path), key, notes, src)
    defaults = _check_class(net, src)[1]
    tensors, records = _flatten(net, src)
    config = _infer_config(net, tensors, records, defaults, notes, src)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()
             if not k.endswith(".resample_filter")}
    return config, state


def convert_nvlabs(path: str | os.PathLike, key: str = "G_ema", notes: list[str] | None = None) -> Generator:
    """NVlabs ``.pkl`` → native :class:`Generator` (eval mode, frozen). Notes for the user go to ``notes``."""
    notes = [] if notes is None else notes
    config, state = load_nvlabs_pkl(path, key=key, notes=notes)
    model = Generator(config)
    if "mapping.w_avg" not in state:
        state["mapping.w_avg"] = torch.zeros(config.w_dim)
        model.load_state_dict_checked(state, source=str(path))
        with torch.no_grad():
            model.mapping.w_avg.copy_(model.estimate_w_avg())
        notes.append("the network has no tracked w_avg: estimated it from 10,000 samples of z (seed 0)")
    else:
        model.load_state_dict_checked(state, source=str(path))
    return model.eval().requires_grad_(False)
