"""The options every command shares, so that one name means one thing across the whole CLI.

``-b/--bundle`` a bundle name or folder; ``-p/--prompt`` (repeatable) what the face does; ``-n/--frames`` frames per
prompt; ``--faces`` how many faces; ``-o/--out`` where the result goes; ``--seed`` face seeds (NVlabs ranges where a
command makes one output per seed); ``--steps`` optimisation steps; ``--device`` auto | cpu | cuda | mps.
"""

from __future__ import annotations

from typing import Any, Callable

import click

DEVICES = ("auto", "cpu", "cuda", "mps")  # the meanings of faceanim.utils.device.pick_device
ARCH_HELP = ("CLIP architecture of a checkpoint file: an open_clip name (RN50, ViT-B-32; -quickgelu for QuickGELU) "
             "or only the activation (quickgelu | gelu) [default: from the file; OpenAI archives: QuickGELU].")


def bundle_option(help: str = "Bundle: a name, a folder or a Hub id hf:ORG/NAME[@REV] [default: toonface]."
                  ) -> Callable:
    return click.option("--bundle", "-b", default=None, metavar="NAME|DIR|hf:ID", help=help)


def device_option(f: Callable) -> Callable:
    return click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICES),
                        help="auto: CUDA, else Apple MPS, else the CPU.")(f)


def prompt_option(required: bool = True, help: str = "What the face does; repeat for several.") -> Callable:
    return click.option("--prompt", "-p", "prompts", multiple=True, required=required, help=help)


def frames_option(default: int | None = None, help: str = "Frames per prompt.") -> Callable:
    return click.option("--frames", "-n", default=default, type=click.IntRange(2, 1024), show_default=default is not None,
                        help=help)


def faces_option(default: int, help: str = "Faces (seeds seed … seed+N−1).") -> Callable:
    return click.option("--faces", default=default, show_default=True, type=click.IntRange(1), help=help)


def out_option(default: str | None = None, required: bool = False, help: str = "Output.") -> Callable:
    kwargs = {"default": default, "show_default": True} if default is not None else {}
    return click.option("--out", "-o", required=required, help=help, **kwargs)


class InputPath(click.Path):
    """An existing file or folder, checked at parse time with a plain message ("no such file: x.pt")."""

    def __init__(self, file_okay: bool = True, dir_okay: bool = True):
        super().__init__(exists=True, file_okay=file_okay, dir_okay=dir_okay, path_type=str)

    def convert(self, value: Any, param, ctx) -> str:
        import os

        if not os.path.exists(value):
            self.fail(f"no such {'folder' if not self.file_okay else 'file'}: {value}", param, ctx)
        return super().convert(value, param, ctx)


class SourcePath(InputPath):
    """An existing file or folder, or something to download: a URL or a named source such as ``nvlabs:ffhq``."""

    def convert(self, value: Any, param, ctx) -> str:
        from faceanim.downloads import is_remote

        return value if is_remote(value) else super().convert(value, param, ctx)


def one_line(exc: click.UsageError) -> str:
    """A usage error as one line: ``--frames: 0 is not in the range 2<=x<=1024.``; for arguments the message."""
    if isinstance(exc, click.BadParameter) and exc.param is not None and not isinstance(exc, click.MissingParameter):
        if isinstance(exc.param, click.Argument):
            return exc.message
        longest = max(exc.param.opts, key=len) if exc.param.opts else exc.param.human_readable_name
        return f"{longest}: {exc.message}"
    where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
    return " ".join(exc.format_message().split()) + where


class SeedsType(click.ParamType):
    """``3`` or NVlabs-style ranges ``0-3,7`` → a tuple of ints, checked at parse time."""

    name = "SEEDS"

    def convert(self, value: Any, param, ctx) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        from faceanim.errors import FaceanimError
        from faceanim.pipelines.job import parse_seeds

        try:
            return parse_seeds(str(value))
        except FaceanimError as exc:
            self.fail(str(exc), param, ctx)
