"""Model bundles: everything one animation needs, in one folder of ``config.json`` + safetensors files.

    bundle.json          {"kind": "faceanim-bundle", name, template, mode, truncation_psi, fps, …}
    generator/           StyleGAN2 (native)
    motion/              motion model (M, H_v, H_t) with its conditioning CLIP in motion/clip/
    loss_clip/           the CLIP of the contrastive loss (for training, evaluation and text–video scores)
    encoder/             optional inversion encoder (e4e, native; from e4e_ffhq_encode.pt), for real photos
    MODEL_CARD.md        how the bundle was made and what it measures

Bundles are found by path, by Hub id (``hf:ORG/NAME[@REV]``, :mod:`faceanim.hub`), or by name among the bundles shipped in the package (``toonface``) and those in
``$FACEANIM_HOME/bundles`` (default ``~/.cache/faceanim/bundles``). :class:`Bundle` is the one way in:

    bundle = Bundle.open("toonface")          # a name or a folder; reads bundle.json only (no torch)
    bundle.info.template, bundle.path("loss_clip"), bundle.load_generator()
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from faceanim.data.prompts import DEFAULT_TEMPLATE
from faceanim.errors import CheckpointError, FaceanimError
from faceanim.hub import download_bundle, is_hub_id

KIND = "faceanim-bundle"
ALIGNMENTS = ("ffhq", "center-crop", "none")  # ffhq: dlib + FFHQ crop; center-crop: the centred square; none: as is
DEFAULT_BUNDLE = "toonface"
PACKAGED = Path(__file__).parent  # shipped bundles live in sub-folders of this package


def user_bundle_dir() -> Path:
    home = os.environ.get("FACEANIM_HOME")
    return (Path(home) if home else Path.home() / ".cache" / "faceanim") / "bundles"


@dataclass
class BundleInfo:
    name: str                              # bundle name
    template: str = DEFAULT_TEMPLATE       # prompt template for bare prompts
    mode: str = "latent"                   # "latent" (seed / W+ code) or "image" (real photos)
    truncation_psi: float = 0.7            # truncation for faces sampled from a seed
    z_sampler: str = "gaussian"            # how a seed becomes z (faceanim.data.z_samplers)
    fps: int = 10                          # default frames per second of written videos
    num_frames: int = 16                   # default frames per prompt
    example_prompts: list[str] = field(default_factory=lambda: ["smiling"])  # drawn from supported_prompts
    supported_prompts: list[str] = field(default_factory=list)  # trained and checked on (empty: not declared)
    prompt_threshold: float | None = None  # CLIP similarity below which a prompt is far from all supported ones
    alignment: str = "ffhq"                # how photos become crops: "ffhq" (dlib landmarks), "center-crop", "none"
    description: str = ""
    components: dict[str, str] = field(default_factory=dict)  # component → sub-folder

    def declare_supported(self, prompts: list[str]) -> None:
        """Set the supported prompts; the examples become their first six."""
        self.supported_prompts = list(prompts)
        self.example_prompts = self.supported_prompts[:6]


def available_bundles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for root in (PACKAGED, user_bundle_dir()):
        if root.is_dir():
            for d in sorted(root.iterdir()):
                if (d / "bundle.json").is_file():
                    found.setdefault(d.name, d)
    return found


def resolve_bundle(name_or_path: str | os.PathLike | None) -> Path:
    """A bundle folder from a path, a name (None = the default bundle) or a Hub id ``hf:ORG/NAME[@REV]``."""
    spec = str(name_or_path) if name_or_path is not None else DEFAULT_BUNDLE
    if is_hub_id(spec):
        return download_bundle(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "bundle.json").is_file():
            raise FaceanimError(f"{path} is not a faceanim bundle (no bundle.json){_what_it_is(path)}")
        return path
    found = available_bundles()
    if spec in found:
        return found[spec]
    names = ", ".join(found) or "none installed"
    raise FaceanimError(f"unknown bundle {spec!r} (available: {names}; or give a bundle folder path or hf:ORG/NAME)")


def _what_it_is(folder: Path) -> str:
    """A hint when a folder given as a bundle is a single converted model (read from its config.json, no torch)."""
    try:
        kind = json.loads((folder / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return ""
    hints = {
        "stylegan2-generator": ": it is a converted generator; give it with -g/--generator (faceanim invert), or "
                               "assemble a bundle with `faceanim bundle create`",
        "e4e-encoder": ": it is a converted e4e encoder; give it with --encoder",
        "motion-model": ": it is a motion model; assemble a bundle with `faceanim bundle create --motion`",
    }
    return hints.get(kind, "")


# Where each component lives when bundle.json does not say (cond_clip: the motion model's own CLIP).
DEFAULT_COMPONENTS = {"generator": "generator", "motion": "motion", "cond_clip": "motion/clip"}


class Bundle:
    """An opened bundle folder: its description (``info``), where each component is, and loaders.

    Components: ``generator``, ``motion`` (with the conditioning CLIP ``cond_clip`` = ``motion/clip``),
    ``loss_clip`` (default: the conditioning CLIP), and the optional ``encoder`` (e4e) and ``evaluator``.
    """

    def __init__(self, folder: str | os.PathLike, info: BundleInfo):
        self.folder, self.info = Path(folder), info

    @classmethod
    def open(cls, name_or_folder: "str | os.PathLike | Bundle | None" = None) -> "Bundle":
        """A bundle by folder path or name (None: the default bundle); reads only ``bundle.json``."""
        if isinstance(name_or_folder, Bundle):
            return name_or_folder
        folder = resolve_bundle(name_or_folder)
        return cls(folder, read_bundle_info(folder))

    @property
    def name(self) -> str:
        return self.info.name

    def has(self, component: str) -> bool:
        """Whether the bundle carries ``component`` (listed in bundle.json, or one every bundle has)."""
        return component in self.info.components or component in DEFAULT_COMPONENTS

    def path(self, component: str) -> Path:
        """The folder of ``component`` (``loss_clip`` not listed: the conditioning CLIP, as training defaults)."""
        sub = self.info.components.get(component)
        if sub is None and component == "loss_clip":
            return self.path("cond_clip")
        if sub is None and component == "cond_clip":
            return self.path("motion") / "clip"
        sub = sub or DEFAULT_COMPONENTS.get(component)
        if sub is None:
            raise FaceanimError(f"bundle {self.name} has no {component} (it has: "
                                f"{', '.join(self.info.components) or 'nothing listed'})")
        return self.folder / sub

    def load_generator(self):
        from faceanim.models.stylegan2 import Generator

        return Generator.from_pretrained(self.path("generator"))

    def load_animator(self):
        from faceanim.motion.model import LanguageGuidedAnimator

        return LanguageGuidedAnimator.from_pretrained(self.path("motion"))

    def load_clip(self, component: str = "loss_clip"):
        from faceanim.encoders.clip import CLIPEncoder

        return CLIPEncoder.from_pretrained(self.path(component))

    @property
    def motion_mode(self) -> str:
        """"latent" (faces from seeds / codes) or "image" (photos), from the motion model's config.json."""
        path = self.path("motion") / "config.json"
        try:
            return str(json.loads(path.read_text()).get("mode", "latent"))
        except (OSError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path} is unreadable ({exc})") from None

    @property
    def generator_resolution(self) -> int:
        """The generator's image size, from its config.json (no weights loaded)."""
        path = self.path("generator") / "config.json"
        try:
            return int(json.loads(path.read_text())["img_resolution"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is unreadable or names no img_resolution ({exc})") from None

    @property
    def generator_num_ws(self) -> int:
        """How many W+ codes the generator takes (2·log2(resolution) − 2; 18 at 1024 px), without loading it."""
        return 2 * (self.generator_resolution.bit_length() - 1) - 2

    def describe(self) -> str:
        return describe_bundle(self.folder)

    def __repr__(self) -> str:
        return f"Bundle({self.name!r}, {str(self.folder)!r})"


def read_bundle_info(folder: str | os.PathLike) -> BundleInfo:
    folder = Path(folder)
    try:
        data = json.loads((folder / "bundle.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder}/bundle.json is unreadable ({exc})") from None
    if data.pop("kind", None) != KIND:
        raise CheckpointError(f"{folder}/bundle.json is not a faceanim bundle description")
    known = BundleInfo.__dataclass_fields__
    info = BundleInfo(**{k: v for k, v in data.items() if k in known})
    if info.alignment not in ALIGNMENTS:
        raise CheckpointError(f"{folder}/bundle.json: alignment must be one of {', '.join(ALIGNMENTS)}, "
                              f"got {info.alignment!r}")
    unsupported = [p for p in info.example_prompts if info.supported_prompts and p not in info.supported_prompts]
    if unsupported:
        raise CheckpointError(f"{folder}/bundle.json: example prompts {unsupported} are not among its "
                              "supported_prompts")
    if info.prompt_threshold is not None and not -1.0 <= info.prompt_threshold <= 1.0:
        raise CheckpointError(f"{folder}/bundle.json: prompt_threshold must be a cosine similarity in [-1, 1], "
                              f"got {info.prompt_threshold}")
    return info


def create_bundle(out: str | os.PathLike, info: BundleInfo, generator: str | os.PathLike, motion: str | os.PathLike,
                  loss_clip: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None,
                  model_card: str | None = None, overwrite: bool = False, clip_arch: str | None = None,
                  notes: list[str] | None = None) -> Path:
    """Assemble a bundle folder from component folders or files; returns ``out``.

    The generator may be any checkpoint ``faceanim convert`` reads, the encoder an official e4e ``.pt`` (e.g.
    ``e4e_ffhq_encode.pt``) or a native e4e folder, the loss CLIP any file :meth:`CLIPEncoder.from_pretrained`
    reads (``clip_arch`` as its ``arch``): files are converted on the way in. ``notes`` (if given) receives one
    line per choice made (the CLIP's activation and why, the encoder's conversion).
    """
    from faceanim.convert import load_generator
    from faceanim.motion.model import LanguageGuidedAnimator
    from faceanim.utils.io import atomic_dir

    out = Path(out)
    notes = notes if notes is not None else []
    if out.exists() and not overwrite:
        raise FaceanimError(f"{out} already exists (use --force to replace it)")
    if encoder is not None:  # a mismatch is one line before anything heavy is read
        from faceanim.inversion.e4e import encoder_config

        n_styles = encoder_config(encoder).n_styles
    G, _, fmt = load_generator(generator)
    if encoder is not None and n_styles != G.num_ws:
        raise FaceanimError(f"the encoder {encoder} writes {n_styles} W+ codes but the generator takes {G.num_ws} "
                            f"(an encoder trained for another generator)")
    animator = LanguageGuidedAnimator.from_pretrained(motion)
    if animator.config.num_ws != G.num_ws or animator.config.w_dim != G.w_dim:
        raise FaceanimError(f"motion model writes W+ {animator.config.num_ws}×{animator.config.w_dim} but the generator "
                            f"takes {G.num_ws}×{G.w_dim}")
    info.mode = animator.config.mode
    info.template = animator.config.template
    with atomic_dir(out) as tmp:
        G.save_pretrained(tmp / "generator")
        shutil.copytree(motion, tmp / "motion")
        components = {"generator": "generator", "motion": "motion"}
        if loss_clip is not None:
            from faceanim.encoders.clip import CLIPEncoder

            clip = CLIPEncoder.from_pretrained(str(loss_clip), arch=clip_arch)
            clip.save_pretrained(tmp / "loss_clip")
            notes.append(f"loss CLIP: {clip.origin}")
            components["loss_clip"] = "loss_clip"
        if encoder is not None:
            if Path(encoder).is_dir():
                shutil.copytree(encoder, tmp / "encoder")
            else:
                from faceanim.inversion.e4e import load_e4e

                load_e4e(encoder).save_pretrained(tmp / "encoder")
                notes.append(f"encoder: converted the e4e encoder of {encoder} (its generator left out)")
            components["encoder"] = "encoder"
        info.components = components
        (tmp / "bundle.json").write_text(json.dumps({"kind": KIND, **asdict(info)}, indent=2) + "\n")
        if model_card:
            (tmp / "MODEL_CARD.md").write_text(model_card)
    return out


def describe_bundle(folder: str | os.PathLike) -> str:
    """Human-readable summary for ``faceanim info``."""
    folder = Path(folder)
    info = read_bundle_info(folder)
    lines = [f"bundle {info.name}  ({folder})"]
    if info.description:
        lines.append(f"  {info.description}")
    lines.append(f"  mode: {info.mode}, template: {info.template!r}, defaults: {info.num_frames} frames at {info.fps} fps")
    for comp, sub in info.components.items():
        cfg_path = folder / sub / "config.json"
        size = sum(p.stat().st_size for p in (folder / sub).rglob("*") if p.is_file())
        shared = [c for c, s in info.components.items() if c != comp and sub.startswith(s + "/")]
        detail = ""
        if cfg_path.is_file():
            cfg = json.loads(cfg_path.read_text())
            if comp == "generator":
                detail = f"StyleGAN2 {cfg['img_resolution']} px, z {cfg['z_dim']}, w {cfg['w_dim']}"
            elif comp == "motion":
                detail = f"motion model: z {cfg['z_dim']}, h {cfg['h_dim']}, W+ {cfg['num_ws']}×{cfg['w_dim']}"
            elif cfg.get("kind") == "e4e-encoder":
                detail = f"e4e encoder (IR-SE-{cfg.get('num_layers', 50)}) for a {cfg.get('stylegan_size')} px generator"
            elif "embed_dim" in cfg:
                detail = (f"CLIP {cfg.get('name', '')}, {'QuickGELU' if cfg.get('quick_gelu') else 'GELU'}, "
                          f"embed {cfg['embed_dim']}")
        where = f"inside {shared[0]}/" if shared else f"{size / 1e6:.1f} MB"
        lines.append(f"  {comp:<10} {detail}  [{where}]")
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    lines.append(f"  total {total / 1e6:.1f} MB")
    if info.supported_prompts:
        lines.append(f"  supported prompts: {', '.join(info.supported_prompts)}")
        if info.prompt_threshold is not None:
            lines.append(f"  (other prompts run too; one far from all of these — CLIP similarity below "
                         f"{info.prompt_threshold:.3f} — gets a note)")
    else:
        lines.append(f"  example prompts: {', '.join(info.example_prompts)}")
    if (folder / "MODEL_CARD.md").is_file():
        lines.append(f"  model card: {folder / 'MODEL_CARD.md'}")
    return "\n".join(lines)
