"""faceanim: language-guided face animation with a recurrent StyleGAN2-based generator.

Importing the package is cheap: heavy modules (torch models, open_clip) load on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
