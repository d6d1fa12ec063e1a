"""NVlabs ``.pkl`` → native generator: pickle layout, equivalence with an independent forward pass, safety.

The pickles are written without NVlabs code: small stand-in modules reproduce what
``torch_utils.persistence`` stores for each network (``_reconstruct_persistent_obj(meta)`` with ``type``,
``version``, ``module_src``, the bare ``class_name`` and the module ``__dict__`` as ``state``), and throwaway
``torch_utils.persistence`` / ``dnnlib.util`` modules exist in ``sys.modules`` only while pickling.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import io
import math
import pickle
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faceanim.convert import detect_format, load_generator
from faceanim.convert.nvlabs import convert_nvlabs, load_nvlabs_pkl
from faceanim.convert.safe_pickle import PersistentRecord, load_pickle_file
from faceanim.errors import CheckpointError, UnsafePickleError
from faceanim.models.stylegan2 import Generator

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster and does not spin against other jobs on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------------------
# Throwaway NVlabs modules (present in sys.modules only while a pickle is written)
# ---------------------------------------------------------------------------------------------------------------

def _reconstruct_persistent_obj(meta):  # what pickles reference; faceanim must never call it
    raise AssertionError("faceanim called torch_utils.persistence._reconstruct_persistent_obj")


_reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
_reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict with attribute access)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


EasyDict.__module__ = "dnnlib.util"
EasyDict.__qualname__ = "EasyDict"
FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")


@contextlib.contextmanager
def nvlabs_modules():
    """Install the throwaway modules, then put sys.modules back exactly as it was."""
    mods = {name: types.ModuleType(name) for name in FAKE_MODULES}
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    mods["dnnlib"].util = mods["dnnlib.util"]
    mods["dnnlib"].EasyDict = mods["dnnlib.util"].EasyDict = EasyDict
    saved = {name: sys.modules.get(name) for name in FAKE_MODULES}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def write_pickle(path: Path, data, protocol: int = 4) -> Path:
    with nvlabs_modules(), open(path, "wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return path


# Embedded module sources: text only. NVlabs stores the whole source file of the defining module.
NETWORKS_SRC = '''"""Stand-in for training/networks.py (stylegan2-ada-pytorch)."""
import numpy as np
import torch
from torch_utils import persistence

@persistence.persistent_class
class FullyConnectedLayer(torch.nn.Module): ...
class MappingNetwork(torch.nn.Module): ...
class SynthesisLayer(torch.nn.Module): ...
class ToRGBLayer(torch.nn.Module): ...
class SynthesisBlock(torch.nn.Module): ...
class SynthesisNetwork(torch.nn.Module): ...
class Generator(torch.nn.Module): ...
class Conv2dLayer(torch.nn.Module): ...
class Discriminator(torch.nn.Module): ...
'''
NETWORKS_SG2_SRC = NETWORKS_SRC.replace("training/networks.py (stylegan2-ada-pytorch)",
                                        "training/networks_stylegan2.py (stylegan3)") + \
    "# SynthesisBlock(..., fused_modconv_default=True, ...)\n"
NETWORKS_SG3_SRC = '''"""Stand-in for training/networks_stylegan3.py."""
from torch_utils.ops import filtered_lrelu
class SynthesisInput(torch.nn.Module): ...
class SynthesisLayer(torch.nn.Module): ...
class SynthesisNetwork(torch.nn.Module): ...
class Generator(torch.nn.Module): ...
'''
AUGMENT_SRC = '"""Stand-in for training/augment.py."""\nclass AugmentPipe(torch.nn.Module): ...\n'


def persistent(class_name: str, src: str = NETWORKS_SRC):
    """Give a stand-in module NVlabs' pickled form: ``_init_args``/``_init_kwargs`` + persistent ``__reduce__``."""

    def deco(cls):
        init = cls.__init__

        def __init__(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        def __reduce__(self):
            state = {k: v for k, v in self.__dict__.items() if not k.startswith("_nv_")}
            if self.__dict__.get("_nv_legacy"):  # torch 1.x kept these as OrderedDicts
                for k in ("_parameters", "_buffers", "_modules"):
                    state[k] = collections.OrderedDict(state[k])
            meta = dict(type="class", version=6, module_src=self.__dict__.get("_nv_src", src),
                        class_name=class_name, state=state)
            return sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,)

        cls.__init__, cls.__reduce__ = __init__, __reduce__
        return cls

    return deco


def fir(taps) -> torch.Tensor:
    """The buffer NVlabs registers for a short 1-D filter list: normalized 2-D outer product."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


# ---------------------------------------------------------------------------------------------------------------
# Stand-in networks with NVlabs' constructor arguments, attributes, parameters and buffers
# ---------------------------------------------------------------------------------------------------------------

@persistent("FullyConnectedLayer")
class NvFC(nn.Module):
    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1, bias_init=0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)   # numpy float64, as in real pickles
        self.bias_gain = lr_multiplier


@persistent("MappingNetwork")
class NvMapping(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, embed_features=None, layer_features=None,
                 activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        hidden = w_dim if layer_features is None else layer_features
        widths = [z_dim + embed] + [hidden] * (num_layers - 1) + [w_dim]
        if c_dim:
            self.embed = NvFC(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", NvFC(widths[i], widths[i + 1], activation=activation, lr_multiplier=lr_multiplier))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))


@persistent("SynthesisLayer")
class NvLayer(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=1, use_noise=True,
                 activation="lrelu", resample_filter=(1, 3, 3, 1), conv_clamp=None, channels_last=False):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", fir(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = np.sqrt(2)
        self.affine = NvFC(w_dim, in_channels, bias_init=1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(weight.to(memory_format=fmt))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))


@persistent("ToRGBLayer")
class NvToRGB(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, kernel_size=1, conv_clamp=None, channels_last=False):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = NvFC(w_dim, in_channels, bias_init=1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(weight.to(memory_format=fmt))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)


@persistent("SynthesisBlock")
class NvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last, architecture="skip",
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, use_fp16=False, fp16_channels_last=False,
                 **layer_kwargs):
        super().__init__()
        layer_kwargs.pop("fused_modconv_default", None)  # stylegan3-repo option, a block attribute there
        self.in_channels, self.w_dim, self.resolution = in_channels, w_dim, resolution
        self.img_channels, self.is_last, self.architecture = img_channels, is_last, architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", fir(resample_filter))
        self.num_conv = self.num_torgb = 0
        common = dict(w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = NvLayer(in_channels, out_channels, up=2, resample_filter=resample_filter, **common,
                                 **layer_kwargs)
            self.num_conv += 1
        self.conv1 = NvLayer(out_channels, out_channels, **common, **layer_kwargs)
        self.num_conv += 1
        self.torgb = NvToRGB(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                             channels_last=self.channels_last)
        self.num_torgb += 1


@persistent("SynthesisNetwork")
class NvSynthesis(nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, num_fp16_res=0,
                 **block_kwargs):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_from = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for r in self.block_resolutions:
            block = NvBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim=w_dim, resolution=r, img_channels=img_channels,
                            is_last=r == img_resolution, use_fp16=r >= fp16_from, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if r == img_resolution else 0)
            setattr(self, f"b{r}", block)


@persistent("Generator")
class NvGenerator(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, synthesis_kwargs={},
                 **flat_synthesis_kwargs):  # stylegan2-ada nests synthesis_kwargs; the stylegan3 repo flattens them
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = NvSynthesis(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                     **synthesis_kwargs, **flat_synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = NvMapping(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping_kwargs)


@persistent("Conv2dLayer")
class NvConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.register_buffer("resample_filter", fir([1, 3, 3, 1]))
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)


@persistent("Discriminator")
class NvDiscriminator(nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, **kwargs):
        super().__init__()
        self.fromrgb = NvConv(img_channels, 8, kernel_size=1)


@persistent("AugmentPipe", AUGMENT_SRC)
class NvAugmentPipe(nn.Module):
    def __init__(self, xflip=0, rotate90=1, scale=1):
        super().__init__()
        self.register_buffer("p", torch.zeros([]))
        self.register_buffer("Hz_geom", torch.tensor([0.5, -0.25]).half())     # other storage types
        self.register_buffer("counts", torch.tensor([3, -7], dtype=torch.int64))
        self.register_buffer("mask", torch.tensor([True, False]))
        self.xflip, self.rotate90, self.scale = float(xflip), float(rotate90), np.float64(scale)


@persistent("SynthesisInput", NETWORKS_SG3_SRC)
class NvSG3Input(nn.Module):
    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):
        super().__init__()
        self.size = np.broadcast_to(np.asarray(size), [2])       # numpy arrays live in StyleGAN3 state
        self.sampling_rate, self.bandwidth = sampling_rate, bandwidth
        self.weight = nn.Parameter(torch.randn(channels, channels))
        self.register_buffer("freqs", torch.randn(channels, 2))


@persistent("SynthesisNetwork", NETWORKS_SG3_SRC)
class NvSG3Synthesis(nn.Module):
    def __init__(self, w_dim, img_resolution, img_channels, channel_base=32768, channel_max=512, **kwargs):
        super().__init__()
        self.input = NvSG3Input(w_dim, 8, 36, np.float64(16.0), np.float64(2.0))
        self.layer_names = ["L0_36_8"]


@persistent("Generator", NETWORKS_SG3_SRC)
class NvSG3Generator(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={}, **synthesis_kwargs):
        super().__init__()
        self.synthesis = NvSG3Synthesis(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels,
                                        **synthesis_kwargs)
        self.mapping = NvMapping(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=3, **mapping_kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Building snapshots
# ---------------------------------------------------------------------------------------------------------------

CASES = {
    # name: generator options, mirroring train.py of each repo; tiny channel counts for speed
    "ada-4": dict(res=4, z=16, w=16, base=256, cmax=16, layers=2, clamp=None, protocol=4),
    "ada-8-cond-clamp256-legacy": dict(res=8, z=12, w=24, c=5, base=256, cmax=32, layers=3, clamp=256,
                                       embed_features=10, layer_features=20, protocol=3, legacy=True),
    "sg3repo-32-clamp": dict(res=32, z=16, w=16, base=512, cmax=32, layers=4, clamp=0.5, flat=True,
                             src=NETWORKS_SG2_SRC, fp16_channels_last=True, taps=[1, 2, 2, 1], protocol=5),
    "ada-64": dict(res=64, z=16, w=16, base=512, cmax=32, layers=8, clamp=256, protocol=4, augment=True),
}


def build_generator(case: dict, seed: int) -> NvGenerator:
    torch.manual_seed(seed)
    mapping_kwargs = EasyDict(num_layers=case["layers"])
    for k in ("embed_features", "layer_features"):
        if k in case:
            mapping_kwargs[k] = case[k]
    if "w_avg_beta" in case:
        mapping_kwargs.w_avg_beta = case["w_avg_beta"]
    syn = EasyDict(channel_base=case["base"], channel_max=case["cmax"], num_fp16_res=2, conv_clamp=case["clamp"])
    if case.get("fp16_channels_last"):
        syn.fp16_channels_last = True
    if "taps" in case:
        syn.resample_filter = case["taps"]
    if case.get("flat"):
        syn.fused_modconv_default = "inference_only"
    common = dict(z_dim=case["z"], w_dim=case["w"], mapping_kwargs=mapping_kwargs, c_dim=case.get("c", 0),
                  img_resolution=case["res"], img_channels=3)
    G = NvGenerator(**common, **syn) if case.get("flat") else NvGenerator(**common, synthesis_kwargs=syn)
    with torch.no_grad():  # away from NVlabs' init values so that every tensor matters
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.copy_(0.5 * torch.randn([]))
            elif name.endswith(".bias"):
                p.add_(0.2 * torch.randn(p.shape))
        if hasattr(G.mapping, "w_avg"):
            G.mapping.w_avg.copy_(torch.randn(case["w"]))
    for m in G.modules():
        if "src" in case:
            m.__dict__["_nv_src"] = case["src"]
        if case.get("legacy"):
            m.__dict__["_nv_legacy"] = True
    return G


def snapshot(case: dict, G_ema: nn.Module | None, G: nn.Module | None = None) -> dict:
    """What NVlabs' training loop pickles."""
    data = dict(training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="faces.zip",
                                         use_labels=bool(case.get("c")), max_size=1000, xflip=True,
                                         resolution=case["res"]))
    if G is not None:
        data["G"] = G
    data["D"] = NvDiscriminator(c_dim=case.get("c", 0), img_resolution=case["res"], img_channels=3)
    if G_ema is not None:
        data["G_ema"] = G_ema
    data["augment_pipe"] = NvAugmentPipe(xflip=1) if case.get("augment") else None
    return data


@pytest.fixture
def nvlabs_pkl(tmp_path):
    """Write a random-weight NVlabs snapshot for a case; returns (path, G_ema stand-in)."""

    def make(name: str, **overrides):
        case = {**CASES[name], **overrides}
        G_ema = build_generator(case, seed=1)
        G = build_generator(case, seed=2)  # different weights: converting the wrong network would show
        path = write_pickle(tmp_path / f"{name}.pkl", snapshot(case, G_ema, G), protocol=case.get("protocol", 4))
        return path, G_ema

    yield make
    assert not any(name in sys.modules for name in FAKE_MODULES), "throwaway NVlabs modules leaked"


# ---------------------------------------------------------------------------------------------------------------
# Independent reference forward pass, the way NVlabs computes it (fused modulated conv)
# ---------------------------------------------------------------------------------------------------------------

SQRT2 = math.sqrt(2.0)


def ref_bias_act(x, b, act="linear", clamp=None):
    x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = torch.where(x >= 0, x, 0.2 * x) * SQRT2
    return x.clamp(-clamp, clamp) if clamp is not None else x


def ref_fc(sd, name, x, lr=1.0, act="linear"):
    w = sd[f"{name}.weight"] * (lr / math.sqrt(sd[f"{name}.weight"].shape[1]))
    b = sd[f"{name}.bias"] * lr
    return x @ w.t() + b if act == "linear" else ref_bias_act(x @ w.t(), b, "lrelu")


def ref_upfirdn2d(x, f, up=1, pad=(0, 0, 0, 0), gain=1.0):
    """Zero insertion, pad (x0, x1, y0, y1), true convolution with the 2-D filter f."""
    b, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(b, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    k = (f * gain).flip([0, 1])
    return F.conv2d(x, k[None, None].repeat(c, 1, 1, 1), groups=c)


def ref_modconv(x, weight, styles, f=None, up=1, padding=0, demodulate=True, noise=None):
    """Per-sample kernels (weight × style, then demodulated, eps 1e-8) through one grouped convolution."""
    bsz = x.shape[0]
    o, i, kh, kw = weight.shape
    w = weight[None] * styles[:, None, :, None, None]                      # [B, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    x = x.reshape(1, bsz * i, *x.shape[2:])
    if up == 1:
        x = F.conv2d(x, w.reshape(bsz * o, i, kh, kw), padding=padding, groups=bsz)
    else:  # transposed stride-2 conv, then the FIR filter with the padding conv2d_resample derives
        fw = f.shape[-1]
        p0 = padding + (fw + up - 1) // 2 - (kw - 1)
        p1 = padding + (fw - up) // 2 - (kw - up)
        x = F.conv_transpose2d(x, w.transpose(1, 2).reshape(bsz * i, o, kh, kw), stride=up, groups=bsz)
        x = ref_upfirdn2d(x, f, pad=(p0, p1, p0, p1), gain=up ** 2)
    x = x.reshape(bsz, o, *x.shape[2:])
    return x + noise if noise is not None else x


def normalize_2nd_moment(x):
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def ref_mapping(sd, z, c, num_layers, num_ws, lr=0.01, psi=1.0, cutoff=None):
    x = normalize_2nd_moment(z)
    if c is not None:
        x = torch.cat([x, normalize_2nd_moment(ref_fc(sd, "mapping.embed", c))], dim=1)
    for i in range(num_layers):
        x = ref_fc(sd, f"mapping.fc{i}", x, lr=lr, act="lrelu")
    x = x[:, None].repeat(1, num_ws, 1)
    if psi != 1:
        avg = sd["mapping.w_avg"]
        if cutoff is None:
            x = avg.lerp(x, psi)
        else:
            x[:, :cutoff] = avg.lerp(x[:, :cutoff], psi)
    return x


def ref_synthesis(sd, ws, resolutions, clamp=None, noise_mode="const"):
    x = img = None
    idx = 0
    for res in resolutions:
        p = f"synthesis.b{res}"
        f = sd[f"{p}.resample_filter"]
        if x is None:
            x = sd[f"{p}.const"][None].repeat(ws.shape[0], 1, 1, 1)
        for name in (["conv0"] if res > 4 else []) + ["conv1"]:
            q = f"{p}.{name}"
            noise = sd[f"{q}.noise_const"] * sd[f"{q}.noise_strength"] if noise_mode == "const" else None
            styles = ref_fc(sd, f"{q}.affine", ws[:, idx])
            x = ref_modconv(x, sd[f"{q}.weight"], styles, f, up=2 if name == "conv0" else 1, padding=1, noise=noise)
            x = ref_bias_act(x, sd[f"{q}.bias"], "lrelu", clamp)
            idx += 1
        if img is not None:  # skip architecture: FIR-upsample the running image (pad (2, 1), gain 4)
            fw = f.shape[-1]
            img = ref_upfirdn2d(img, f, up=2, pad=((fw + 1) // 2, (fw - 2) // 2) * 2, gain=4)
        t = f"{p}.torgb"
        styles = ref_fc(sd, f"{t}.affine", ws[:, idx]) / math.sqrt(sd[f"{t}.weight"].shape[1])
        y = ref_bias_act(ref_modconv(x, sd[f"{t}.weight"], styles, demodulate=False), sd[f"{t}.bias"], clamp=clamp)
        img = y if img is None else img + y
    return img


# ---------------------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------------------

def _close(a, b):
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=1e-4), f"max abs diff {(a - b).abs().max():.3g}"


@pytest.mark.parametrize("name", list(CASES))
def test_nvlabs_equivalence(nvlabs_pkl, name):
    case = CASES[name]
    path, G_nv = nvlabs_pkl(name)
    notes: list[str] = []
    G = convert_nvlabs(path, notes=notes)
    assert notes == []
    assert not any(n in sys.modules for n in FAKE_MODULES)  # nothing of NVlabs was imported to read it

    cfg = G.config
    res_list = [2 ** i for i in range(2, int(math.log2(case["res"])) + 1)]
    assert (cfg.img_resolution, cfg.z_dim, cfg.w_dim) == (case["res"], case["z"], case["w"])
    assert cfg.c_dim == case.get("c", 0)
    assert cfg.mapping_layers == case["layers"] and cfg.conv_clamp == case["clamp"]
    assert (cfg.channel_base, cfg.channel_max, cfg.channels) == (case["base"], case["cmax"], {})
    assert G.num_ws == 2 * len(res_list)
    sd = {k: v.detach() for k, v in G_nv.state_dict().items()}
    torch.testing.assert_close(G.w_avg, sd["mapping.w_avg"])

    torch.manual_seed(0)
    z = torch.randn(3, case["z"])
    c = torch.randn(3, case["c"]) if case.get("c") else None
    with torch.no_grad():
        w_ref = ref_mapping(sd, z, c, case["layers"], G.num_ws)
        w = G.mapping(z, c)
        _close(w, w_ref[:, 0])

        # W input (broadcast to all layers), const noise
        _close(G.synthesize(w, noise_mode="const"), ref_synthesis(sd, w_ref, res_list, case["clamp"], "const"))

        # W+ input with a distinct code per layer, with and without noise
        wplus = torch.randn(2, G.num_ws, case["w"])
        for mode in ("none", "const"):
            _close(G.synthesis(wplus, noise_mode=mode), ref_synthesis(sd, wplus, res_list, case["clamp"], mode))

        # z → image with truncation ψ = 0.7 on the first `cutoff` ws only
        cutoff = max(1, G.num_ws // 2)
        ws_t = ref_mapping(sd, z, c, case["layers"], G.num_ws, psi=0.7, cutoff=cutoff)
        img = G(z, c, truncation_psi=0.7, truncation_cutoff=cutoff, noise_mode="const")
        _close(img, ref_synthesis(sd, ws_t, res_list, case["clamp"], "const"))


def test_pickle_structure_is_inert_records(nvlabs_pkl):
    path, _ = nvlabs_pkl("ada-8-cond-clamp256-legacy", augment=True)
    data = load_pickle_file(path)
    assert set(data) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    aug = data["augment_pipe"]
    assert aug.qualname == "training.augment.AugmentPipe" and aug.state["scale"] == 1.0
    buffers = aug.state["_buffers"]
    assert buffers["Hz_geom"].dtype == torch.float16 and buffers["Hz_geom"].tolist() == [0.5, -0.25]
    assert buffers["counts"].tolist() == [3, -7] and buffers["mask"].tolist() == [True, False]
    g = data["G_ema"]
    assert isinstance(g, PersistentRecord) and g.qualname == "training.networks.Generator" and g.version == 6
    assert type(g.init_kwargs["mapping_kwargs"]) is dict and g.init_kwargs["mapping_kwargs"]["num_layers"] == 3
    fc0 = g.state["_modules"]["mapping"].state["_modules"]["fc0"]
    assert isinstance(fc0.state["weight_gain"], float) and fc0.state["bias_gain"] == 0.01  # numpy scalars → floats
    assert type(fc0.state["_parameters"]["weight"]) is torch.Tensor  # parameters rebuilt as plain tensors
    assert isinstance(g.state["_non_persistent_buffers_set"], set)


def test_fallback_to_G_and_explicit_key(nvlabs_pkl, tmp_path):
    case = CASES["ada-4"]
    G_train = build_generator(case, seed=5)
    path = write_pickle(tmp_path / "no_ema.pkl", snapshot(case, None, G_train))
    notes: list[str] = []
    G = convert_nvlabs(path, notes=notes)
    assert len(notes) == 1 and "'G'" in notes[0]
    torch.testing.assert_close(G.synthesis.b4.const, G_train.synthesis.b4.const.detach())

    path, _ = nvlabs_pkl("ada-4")
    config, state = load_nvlabs_pkl(path, key="G")
    assert config.img_resolution == 4 and not any(k.endswith("resample_filter") for k in state)
    with pytest.raises(CheckpointError, match="no 'G_smooth' network"):
        load_nvlabs_pkl(path, key="G_smooth")


def test_kwargs_disagreeing_with_weights_trust_the_weights(tmp_path):
    case = CASES["ada-8-cond-clamp256-legacy"]
    G_nv = build_generator(case, seed=3)
    for kw in (G_nv._init_kwargs["synthesis_kwargs"], G_nv.synthesis._init_kwargs):  # claims 512 channels
        kw.update(channel_base=4096, channel_max=512)
    G_nv._init_kwargs["img_resolution"] = 1024
    path = write_pickle(tmp_path / "odd.pkl", snapshot(case, G_nv))
    notes: list[str] = []
    G = convert_nvlabs(path, notes=notes)
    assert any("channel counts" in n for n in notes) and any("img_resolution=1024" in n for n in notes)
    assert G.config.channels == {"4": 32, "8": 32} and G.img_resolution == 8
    sd = {k: v.detach() for k, v in G_nv.state_dict().items()}
    wplus = torch.randn(2, G.num_ws, case["w"])
    with torch.no_grad():
        _close(G.synthesis(wplus, noise_mode="const"), ref_synthesis(sd, wplus, [4, 8], case["clamp"]))


def test_no_tracked_w_avg_is_estimated(tmp_path):
    case = {**CASES["ada-4"], "w_avg_beta": None}
    path = write_pickle(tmp_path / "no_avg.pkl", snapshot(case, build_generator(case, seed=4)))
    notes: list[str] = []
    G = convert_nvlabs(path, notes=notes)
    assert any("estimated" in n for n in notes) and G.config.w_avg_beta is None
    assert G.w_avg.abs().sum() > 0


def test_converted_generator_saves_and_reloads_natively(nvlabs_pkl, tmp_path):
    path, _ = nvlabs_pkl("ada-8-cond-clamp256-legacy")
    assert detect_format(path) == "nvlabs"
    G, notes, fmt = load_generator(path)
    assert fmt == "nvlabs" and notes == []
    G2 = Generator.from_pretrained(G.save_pretrained(tmp_path / "native"))
    w = torch.randn(2, G.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(G2.synthesize(w), G.synthesize(w))


def test_unsupported_architecture_and_stylegan3(tmp_path):
    case = CASES["ada-4"]
    G_nv = build_generator(case, seed=0)
    G_nv.synthesis.b4.__dict__["architecture"] = "orig"
    with pytest.raises(CheckpointError, match="architecture 'orig' is not supported"):
        convert_nvlabs(write_pickle(tmp_path / "orig.pkl", snapshot(case, G_nv)))

    sg3 = NvSG3Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                         mapping_kwargs=EasyDict(num_layers=2), channel_base=512, channel_max=16, conv_kernel=1,
                         use_radial_filters=True)
    path = write_pickle(tmp_path / "sg3.pkl", snapshot({"res": 16}, sg3))
    with pytest.raises(CheckpointError, match=r"StyleGAN3 \(alias-free\).*networks_stylegan3\.Generator.*StyleGAN3-R"):
        convert_nvlabs(path)

    with pytest.raises(CheckpointError, match="'D' is a|unsupported network training.networks.Discriminator"):
        convert_nvlabs(write_pickle(tmp_path / "d.pkl", snapshot(case, None)), key="D")


# ---------------------------------------------------------------------------------------------------------------
# Safety
# ---------------------------------------------------------------------------------------------------------------

class Reduces:
    """Pickles as ``fn(*args)``: what a malicious file would contain."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _assert_refused(path: Path, marker: Path, *names: str):
    with pytest.raises(UnsafePickleError) as info:
        convert_nvlabs(path)
    msg = str(info.value)
    assert "\n" not in msg and all(n in msg for n in names), msg
    assert not marker.exists()


def test_malicious_globals_are_refused_and_never_called(tmp_path):
    import os

    marker = tmp_path / "pwned"
    cases = {
        "system": Reduces(os.system, f"touch {marker}"),
        "exec": Reduces(exec, f"open({str(marker)!r}, 'w').write('x')"),
        "eval": Reduces(eval, f"open({str(marker)!r}, 'w')"),
    }
    expected = {"system": f"{os.system.__module__}.system", "exec": "builtins.exec", "eval": "builtins.eval"}
    for key, evil in cases.items():
        path = write_pickle(tmp_path / f"{key}.pkl", {"G_ema": evil})
        _assert_refused(path, marker, expected[key])

    # hidden deep inside an otherwise genuine snapshot, after many legitimate tensors
    case = CASES["ada-4"]
    data = snapshot(case, build_generator(case, seed=0))
    data["training_set_kwargs"]["path"] = Reduces(os.system, f"touch {marker}")
    _assert_refused(write_pickle(tmp_path / "hidden.pkl", data), marker, "system")


def test_embedded_module_source_is_never_executed(tmp_path):
    marker = tmp_path / "pwned_by_src"
    src = NETWORKS_SRC + f"\nopen({str(marker)!r}, 'w').write('pwned')\nimport os\nos.system('touch {marker}')\n"
    case = {**CASES["ada-4"], "src": src}
    G = convert_nvlabs(write_pickle(tmp_path / "src.pkl", snapshot(case, build_generator(case, seed=0))))
    assert G.img_resolution == 4
    assert not marker.exists()
    assert not any(n in sys.modules for n in FAKE_MODULES)


def test_malicious_tensor_storage_is_refused(tmp_path):
    import os

    marker = tmp_path / "pwned_by_storage"
    blob = io.BytesIO()  # a legacy torch.save stream whose payload calls os.system
    for header in (0x1950A86A20F9469CFC6C, 1001, dict(protocol_version=1001, little_endian=True,
                                                      type_sizes=dict(short=2, int=4, long=4))):
        pickle.dump(header, blob, protocol=2)
    pickle.dump(Reduces(os.system, f"touch {marker}"), blob, protocol=2)
    path = write_pickle(tmp_path / "storage.pkl", {"G_ema": Reduces(torch.storage._load_from_bytes, blob.getvalue())})
    _assert_refused(path, marker, "storage", "system")


def _stack_global(module: str, name: str) -> bytes:
    """Protocol-4 bytes: push module and name (SHORT_BINUNICODE), STACK_GLOBAL, STOP."""
    def text(s: str) -> bytes:
        return b"\x8c" + bytes([len(s)]) + s.encode()
    return b"\x80\x04" + text(module) + text(name) + b"\x93."


@pytest.mark.parametrize("raw,name", [
    (b"cos\nsystem\n(S'touch {m}'\ntR.", "os.system"),                              # protocol 0 GLOBAL
    (b"(S'touch {m}'\nios\nsystem\n.", "os.system"),                                 # INST opcode
    (_stack_global("torch.storage", "_load_from_bytes.__globals__"),                 # dotted STACK_GLOBAL
     "torch.storage._load_from_bytes.__globals__"),
    (b"\x80\x02ctorch\nload\nq\x00.", "torch.load"),
    (b"\x80\x02X\x01\x00\x00\x00xQ.", "persistent ids"),                           # BINPERSID
])
def test_protocol_level_tricks_are_refused(tmp_path, raw, name):
    marker = tmp_path / "pwned"
    path = tmp_path / "trick.pkl"
    path.write_bytes(raw.replace(b"{m}", str(marker).encode()))
    _assert_refused(path, marker, name)


def test_bad_files_give_one_line_checkpoint_errors(nvlabs_pkl, tmp_path):
    path, _ = nvlabs_pkl("ada-4")
    good = path.read_bytes()
    files = {
        "truncated.pkl": good[: len(good) // 2],
        "header_only.pkl": good[:2],
        "random.pkl": random.Random(0).randbytes(4096),
        "empty.pkl": b"",
    }
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(CheckpointError) as info:
            convert_nvlabs(tmp_path / name)
        assert type(info.value) is CheckpointError and "\n" not in str(info.value), (name, info.value)
    for legacy in (False, True):
        torch.save({"g_ema": {}}, tmp_path / "torch.pt", _use_new_zipfile_serialization=not legacy)
        with pytest.raises(CheckpointError, match="torch.save checkpoint"):
            convert_nvlabs(tmp_path / "torch.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        convert_nvlabs(tmp_path / "missing.pkl")
    write_pickle(tmp_path / "list.pkl", [1, 2, 3])
    with pytest.raises(CheckpointError, match="snapshot dict"):
        convert_nvlabs(tmp_path / "list.pkl")


def test_cli_convert_nvlabs_and_refuse_malicious(nvlabs_pkl, tmp_path, capsys):
    import os

    from faceanim.cli.main import main
    from faceanim.models.stylegan2 import Generator as Native

    path, _ = nvlabs_pkl("ada-64")
    assert main(["convert", str(path), str(tmp_path / "native")]) == 0
    assert "converted nvlabs checkpoint" in capsys.readouterr().out
    assert Native.from_pretrained(tmp_path / "native").img_resolution == 64

    marker = tmp_path / "pwned"
    evil = write_pickle(tmp_path / "evil.pkl", {"G_ema": Reduces(os.system, f"touch {marker}")})
    assert main(["convert", str(evil), str(tmp_path / "evil_out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceanim: error:") and "system" in err and "\n" not in err
    assert not marker.exists() and not (tmp_path / "evil_out").exists()
