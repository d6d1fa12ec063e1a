"""``faceanim convert``: a checkpoint → a native model folder (a generator, or an e4e file's encoder)."""

from __future__ import annotations

import click

from faceanim.cli.options import SourcePath


@click.command()
@click.argument("src", type=SourcePath())
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["auto", "rosinality", "e4e", "nvlabs", "native"]),
              default="auto", show_default=True, help="Source format (auto-detected from the file's first bytes).")
@click.option("--lr-mlp", type=float, default=0.01, show_default=True,
              help="Mapping-network learning-rate multiplier of rosinality checkpoints (not stored in them).")
@click.option("--part", type=click.Choice(["auto", "generator", "encoder"]), default="auto", show_default=True,
              help="What to take: auto = an e4e file's encoder (for `bundle create --encoder`), else the generator.")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
def convert(src: str, dst: str, fmt: str, lr_mlp: float, part: str, force: bool) -> None:
    """Convert a checkpoint SRC into a native model folder DST (config.json + model.safetensors).

    SRC: rosinality .pt (e.g. stylegan2-ffhq-config-f.pt), NVlabs .pkl (stylegan2-ada-pytorch / stylegan3 with a
    StyleGAN2 generator; read without running the code inside), or an e4e .pt (e4e_ffhq_encode.pt: its encoder,
    or with --part generator its generator). SRC may also be an http(s) URL (a checksum may follow as
    #sha256=HEX) or a named source — nvlabs:ffhq, nvlabs:metfaces, nvlabs:afhqcat, nvlabs:afhqdog,
    nvlabs:afhqwild, nvlabs:brecahad, nvlabs:cifar10 (NVlabs' stylegan2-ada pickles) —, downloaded into
    $FACEANIM_HOME/downloads with a progress bar and resumed if the connection drops.
    """
    from faceanim.convert import convert_checkpoint

    result = convert_checkpoint(src, dst, fmt=fmt, lr_mlp=lr_mlp, overwrite=force, part=part)
    for line in result.summary(dst):
        click.echo(line)
