"""Plugins: packages that add z-samplers, metrics or evaluation domains to faceanim register them when imported.

The core never imports a domain: it finds plugins through the entry-point group ``faceanim.plugins`` (declared in
a package's ``pyproject.toml``) and imports them the first time a name it does not know is asked for. ToonFace
is such a plugin (``toonface = "faceanim.toon.plugin"`` in faceanim's own ``pyproject.toml``)::

    [project.entry-points."faceanim.plugins"]
    mydomain = "mypackage.faceanim_plugin"     # imported once; registers with register_z_sampler, …
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

GROUP = "faceanim.plugins"


@functools.cache
def load_plugins() -> tuple[str, ...]:
    """Import every registered plugin module once; returns their entry-point names."""
    names = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        ep.load()
        names.append(ep.name)
    return tuple(names)


class NamedRegistry(dict):
    """Functions by name that the core and plugins add to (z-samplers, region masks): ``register(name)`` is a
    decorator, ``lookup(name)`` imports the plugins the first time a name is unknown."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind  # what one entry is called in messages ("latent sampler")

    def register(self, name: str):
        def wrap(fn):
            if self.get(name, fn) is not fn:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = fn
            return fn

        return wrap

    def lookup(self, name: str):
        if name not in self:
            load_plugins()
        if name not in self:
            raise ValueError(f"unknown {self.kind} {name!r} (known: {', '.join(sorted(self)) or 'none'}; domain "
                             "plugins register more, see faceanim.plugins)")
        return self[name]
