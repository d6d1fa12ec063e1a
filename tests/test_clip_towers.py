"""faceanim's own CLIP towers and tokenizer against open_clip's, on the same (random) weights and texts.

The towers must load open_clip state dicts unchanged and give open_clip's numbers (≤ 1e-5) on the RN50, ViT-B/32
and ToonFace-bundle architectures; the tokenizer must give open_clip's ids, truncation and end token included.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from faceanim.bundles import resolve_bundle
from faceanim.encoders import CLIPConfig, CLIPEncoder
from faceanim.encoders.clip_model import CLIPModel, unsupported
from faceanim.encoders.tokenizer import BPETokenizer, clean, get_tokenizer
from faceanim.utils.init import no_weight_init

open_clip = pytest.importorskip("open_clip")

BUNDLE_CLIP = resolve_bundle("toonface") / "motion" / "clip"


def _arch(name: str, image_size: int, quick_gelu: bool) -> CLIPConfig:
    """open_clip's architecture ``name`` with a smaller input image (same layers and widths)."""
    cfg = CLIPConfig.from_open_clip(name, quick_gelu=quick_gelu)
    return CLIPConfig(embed_dim=cfg.embed_dim, vision_cfg={**cfg.vision_cfg, "image_size": image_size},
                      text_cfg=cfg.text_cfg, name=name, quick_gelu=quick_gelu)


def _bundle_config() -> CLIPConfig:
    payload = json.loads((BUNDLE_CLIP / "config.json").read_text())
    payload.pop("kind")
    return CLIPConfig.from_dict(payload)


CONFIGS = {  # RN50 at 64 px (2×2 attention-pool grid), ViT-B/32 at 64 px (2×2 patches), the bundle's as shipped
    "RN50": lambda: _arch("RN50", 64, quick_gelu=True),
    "ViT-B-32": lambda: _arch("ViT-B-32", 64, quick_gelu=False),
    "bundle": _bundle_config,
}


def _pair(config: CLIPConfig, seed: int = 0) -> tuple[torch.nn.Module, CLIPModel]:
    """open_clip's CLIP with every float tensor drawn at random (BN statistics and the zero-initialized bn3 scales
    too; weights ~ N(0, 1/fan_in)), and ours loaded from its state dict (strict: same keys, same shapes)."""
    with no_weight_init():  # every tensor is drawn below (open_clip's own init of RN50 takes seconds)
        ref = CLIPEncoder(config, impl="open_clip").model
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in ref.state_dict().items():
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(0.5 + r.abs())
            elif t.ndim == 1 and name.endswith("weight"):  # LayerNorm / BatchNorm scales
                t.copy_(1 + 0.1 * r)
            else:
                t.copy_(r * (t[0].numel() ** -0.5 if t.ndim >= 2 else 0.05))
    ours = CLIPModel(config.embed_dim, config.vision_cfg, config.text_cfg, config.quick_gelu)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref.eval(), ours.eval()


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_towers_match_open_clip(arch: str) -> None:
    config = CONFIGS[arch]()
    ref, ours = _pair(config)
    assert list(ref.state_dict()) == list(ours.state_dict())
    images = torch.randn(2, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(1))
    text = get_tokenizer()(["a photo of a smiling person", "The cartoon person is going grey."], config.context_length)
    with torch.no_grad():
        for normalize in (False, True):
            a, b = ref.encode_image(images, normalize=normalize), ours.encode_image(images, normalize=normalize)
            assert a.shape == b.shape == (2, config.embed_dim)
            assert (a - b).abs().max() <= 1e-5
            a, b = ref.encode_text(text, normalize=normalize), ours.encode_text(text, normalize=normalize)
            assert (a - b).abs().max() <= 1e-5
        assert torch.equal(ref.logit_scale, ours.logit_scale)


def test_towers_train_mode_and_gradients_match() -> None:
    """Fine-tuning the conditioning CLIP (train mode: BatchNorm on batch statistics) gives the same gradients."""
    config = _bundle_config()
    ref, ours = _pair(config, seed=3)
    ref.train(), ours.train()
    images = torch.randn(4, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(2))
    text = get_tokenizer()(["smiling", "crying", "angry", "old"], config.context_length)
    for model in (ref, ours):
        (model.encode_image(images, normalize=True) * model.encode_text(text, normalize=True)).sum().backward()
    grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        if grads[name].grad is None:  # logit_scale plays no part here
            assert p.grad is None, name
            continue
        assert (p.grad - grads[name].grad).abs().max() <= 1e-5, name
    for name, t in ref.state_dict().items():  # BatchNorm running statistics updated alike
        assert torch.allclose(t.float(), ours.state_dict()[name].float(), atol=1e-6), name


def test_bundle_clip_loads_into_our_towers_and_matches_open_clip() -> None:
    """The shipped bundle's CLIP folder loads into our towers; open_clip on the same file gives the same numbers."""
    ours = CLIPEncoder.from_pretrained(BUNDLE_CLIP)
    assert ours.impl == "faceanim" and isinstance(ours.model, CLIPModel)
    ref = CLIPEncoder(ours.config, impl="open_clip")
    ref.model.load_state_dict(ours.model.state_dict())
    ref.eval()
    images = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        assert (ours.encode_image(images) - ref.encode_image(images)).abs().max() <= 1e-5
        prompts = ["smiling", "going grey", "The cartoon person is tilting head to the left."]
        assert (ours.encode_text(prompts) - ref.encode_text(prompts)).abs().max() <= 1e-5
    bigger = ours.with_image_size(96)  # our towers carry over to resized copies
    assert bigger.impl == "faceanim" and bigger.image_size == 96


def test_open_clip_folder_loads_into_our_towers(tmp_path) -> None:
    """An open_clip-built model saved as a native folder comes back in our towers with identical outputs."""
    config = CLIPConfig(embed_dim=32, vision_cfg={"layers": 2, "width": 64, "patch_size": 8, "image_size": 32,
                                                  "ls_init_value": 0.1, "pool_type": "avg"},
                        text_cfg={"context_length": 16, "width": 64, "heads": 2, "layers": 2, "proj_bias": True,
                                  "ls_init_value": 0.1})
    torch.manual_seed(0)
    built = CLIPEncoder.from_config(config)
    assert built.impl == "open_clip"
    loaded = CLIPEncoder.from_pretrained(built.save_pretrained(tmp_path / "clip"))
    assert loaded.impl == "faceanim"
    images = torch.rand(2, 3, 40, 48) * 2 - 1
    with torch.no_grad():
        assert (loaded.encode_image(images) - built.encode_image(images)).abs().max() <= 1e-5
        assert (loaded.encode_text(["smiling", "sad"]) - built.encode_text(["smiling", "sad"])).abs().max() <= 1e-5


def test_unimplemented_architecture_falls_back_to_open_clip(tmp_path) -> None:
    config = CLIPConfig(embed_dim=32, vision_cfg={"layers": 1, "width": 64, "patch_size": 8, "image_size": 32,
                                                  "pos_embed_type": "sin_cos_2d"},
                        text_cfg={"context_length": 16, "width": 64, "heads": 1, "layers": 1})
    assert unsupported(config.vision_cfg, config.text_cfg) == "vision_cfg.pos_embed_type='sin_cos_2d'"
    folder = CLIPEncoder.from_config(config).save_pretrained(tmp_path / "clip")
    assert CLIPEncoder.from_pretrained(folder).impl == "open_clip"
    with pytest.raises(ValueError, match="pos_embed_type"):
        CLIPModel(config.embed_dim, config.vision_cfg, config.text_cfg)


# ------------------------------------------------------------------------------------------------ tokenizer
CORPUS = [
    "The person is smiling.", "smiling", "", " ", "a", "A", "ALL CAPS SHOUTING", "MiXeD cAsE", "I'LL SEE", "it's, we're",
    "they've I'm you'd we'll", "don't!!!  Really???", "...", "—", "tabs\tand\nnewlines\r\nand  runs     of   spaces  ",
    "   leading and trailing   ", "numbers 12345 and 3.14159 and 1,000,000", "x2 4k 1080p", "e-mail@example.com",
    "https://example.com/path?q=1&r=2", "&amp; &lt;b&gt; &amp;amp; &quot;quoted&quot; &#39;", "AT&T", "50% off #1 $5 ^_^",
    "😀", "smiling 😀😃😄 laughing 🤣", "👩‍👩‍👧‍👦 family", "❤️ ♥ ☺", "🇫🇷 flag", "مرحبا بالعالم", "الشخص يبتسم",
    "שלום", "Привет, мир", "Γειά σου Κόσμε", "你好，世界", "こんにちは世界", "안녕하세요", "नमस्ते", "ไทย",
    "café naïve résumé coöperate", "cafe\u0301 (combining accent)", "ﬁne ﬂow (ligatures)", "ＦＵＬＬ ｗｉｄｔｈ",
    "“curly” ‘quotes’ and ’apostrophe’s", "Ã©tÃ© mojibake", "â€œmojibakeâ€\x9d", "zero\u200bwidth", "soft\u00adhyphen",
    "nbsp\u00a0space", "control\x00\x01\x1bchars", "\u2028line\u2029sep", "<start_of_text>", "<end_of_text> inside",
    "hi<start_of_text>there<end_of_text>", "</w>", "İstanbul ß ẞ Σ ς", "ǅ ǈ ﬀ", "𝔣𝔯𝔞𝔨𝔱𝔲𝔯 𝐛𝐨𝐥𝐝", "½ ² ⅷ ①",
    "supercalifragilisticexpialidocious", "a" * 200, "smiling " * 40, "😀" * 50, "مرحبا " * 30,
]


@pytest.fixture(scope="module")
def reference():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def _random_texts(n: int, seed: int) -> list[str]:
    """Strings mixing ASCII, Latin-1, Arabic, CJK, emoji, combining marks, spaces and punctuation."""
    rng = random.Random(seed)
    pools = [(0x20, 0x7E), (0xA0, 0xFF), (0x600, 0x6FF), (0x4E00, 0x4E80), (0x1F600, 0x1F64F), (0x300, 0x36F),
             (0x2000, 0x206F), (0xFF01, 0xFF5E)]
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(1, 40)):
            lo, hi = rng.choice(pools)
            chars.append(" " if rng.random() < 0.15 else chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


def test_tokenizer_ids_match_open_clip(reference) -> None:
    tok = get_tokenizer()
    assert tok.vocab_size == len(reference.encoder) == 49408
    assert tok.encoder == reference.encoder
    assert (tok.start_id, tok.end_id) == (reference.sot_token_id, reference.eot_token_id)
    texts = CORPUS + _random_texts(300, seed=0)
    for text in texts:
        assert tok.encode(text) == reference.encode(text), repr(text)
    for context in (77, 32, 8, 3):  # truncation: the last kept token becomes the end token
        assert torch.equal(tok(texts, context), reference(texts, context_length=context)), context
    long = tok(["smiling " * 40], 32)[0]
    assert long[-1] == tok.end_id and long[0] == tok.start_id and (long != 0).all()


def test_tokenizer_decode_matches_open_clip(reference) -> None:
    tok = get_tokenizer()
    for text in CORPUS[:40]:
        ids = reference.encode(text)
        assert tok.decode(ids) == reference.decode(ids)


def test_ftfy_skipped_only_where_it_changes_nothing() -> None:
    """``clean`` skips ftfy for printable ASCII without '&'; ftfy leaves all such text unchanged."""
    import ftfy

    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert ftfy.fix_text(text) == text
        assert clean(text) == " ".join(text.split()).lower()


def test_tokenizer_reads_only_its_vocabulary(tmp_path) -> None:
    bad = tmp_path / "vocab.txt.gz"
    import gzip

    bad.write_bytes(gzip.compress(b"header\na b\n"))
    with pytest.raises(ValueError, match="48894"):
        BPETokenizer(bad)
