"""Face domains: what ``faceanim evaluate`` and ``faceanim results`` know about a bundle's faces beyond its networks.

The built-in ``human`` domain takes prompts as written, has no ground truth and draws FID's real images from
``--real-dir``. A domain plugin (see :mod:`faceanim.plugins`) registers more with :func:`register_domain`: ToonFace
maps prompts to the renderer factors its evaluator reads back, renders real images for FID, and decodes its
latents so that the generator can draw each prompted change itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from faceanim.errors import FaceanimError

RealImages = Callable[[], Iterator[Any]]  # () -> batches of real images [B, 3, R, R] in [-1, 1]


@dataclass
class Prompt:
    text: str                  # what the methods are given
    key: str | None = None     # the domain's name of the prompted factor, for ground truth (None: none)


class Domain:
    """The ``human`` domain; plugins subclass it and override what their faces add."""

    name = "human"
    evaluator_label = "evaluator"  # what the ground-truth regressor is called on pages

    def owns(self, info: Any) -> bool:
        """Whether a bundle (its :class:`~faceanim.bundles.BundleInfo`) draws this domain's faces."""
        return False

    def resolve_prompts(self, prompts: Sequence[str], info: Any) -> tuple[list[Prompt], list[str]]:
        """Prompts to animate (``()``: the bundle's examples) and notes for the page."""
        texts = list(prompts) or list(getattr(info, "example_prompts", None) or ["smiling"])
        return [Prompt(t) for t in texts], []

    def prompt_key(self, text: str) -> str | None:
        """The ground-truth key a prompt names (None: no ground truth)."""
        return None

    def load_evaluator(self, path: str) -> Any:
        """The domain's ground-truth regressor from a folder."""
        raise FaceanimError(f"the {self.name} domain has no ground-truth evaluator")

    def real_images(self, n: int, size: int, seed: int) -> tuple[RealImages, str] | None:
        """FID's real images when the domain can draw them itself: (batches, label); None: none."""
        return None

    def draws_references(self, info: Any) -> bool:
        """Whether the bundle's latents decode into the domain's factors (the ``generator`` metric requirement)."""
        return False

    def training_prompts(self, prompts: Sequence[str]) -> list[str]:
        """Training prompts of a suite's ablations from the names a suite file gives."""
        return list(prompts)


DOMAINS: dict[str, Domain] = {"human": Domain()}


def register_domain(domain: Domain) -> Domain:
    if DOMAINS.get(domain.name, domain) is not domain:
        raise ValueError(f"domain {domain.name!r} is already registered")
    DOMAINS[domain.name] = domain
    return domain


def get_domains() -> dict[str, Domain]:
    """Every domain (plugins loaded first)."""
    from faceanim.plugins import load_plugins

    load_plugins()
    return DOMAINS


def get_domain(name: str) -> Domain:
    domains = get_domains()
    if name not in domains:
        raise FaceanimError(f"unknown domain {name!r} (known: {', '.join(domains)})")
    return domains[name]


def domain_of(info: Any, has_evaluator: bool = False) -> Domain:
    """The domain of a bundle: the plugin that owns it; with an evaluator given, the first domain that reads one."""
    plugins = [d for d in get_domains().values() if d.name != "human"]
    for d in plugins:
        if info is not None and d.owns(info):
            return d
    if has_evaluator:
        readers = [d for d in plugins if type(d).load_evaluator is not Domain.load_evaluator]
        if readers:
            return readers[0]
    return DOMAINS["human"]
