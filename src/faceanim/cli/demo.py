"""`faceanim demo`: serve the web app (parse → :func:`faceanim.web.demo.run_demo` → report)."""

from __future__ import annotations

import click

from faceanim.errors import FaceanimError


@click.command()
@click.option("--bundle", "-b", "bundles", multiple=True,
              help="Bundle name or folder; repeat to offer several (default: toonface).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves other machines too (a warning is printed).")
@click.option("--port", default=7860, show_default=True, type=int, help="Port to listen on.")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda", "mps"]), show_default=True)
@click.option("--queue-size", default=8, show_default=True, type=int,
              help="Requests that may wait; one more is told 'busy, try again' at once.")
@click.option("--invert-steps", default=None, type=int,
              help="Projector steps for uploaded photos when a bundle has no e4e encoder [default: 300].")
def demo(bundles: tuple[str, ...], host: str, port: int, device: str, queue_size: int,
         invert_steps: int | None) -> None:
    """Start the web app: pick a face (seed, gallery or photo), type a prompt, get a video.

    Runs offline (no analytics, no share links) on 127.0.0.1 unless --host says otherwise; Ctrl-C stops it.
    """
    from faceanim.web.server import offline_environment

    offline_environment()  # before Gradio, open_clip and huggingface_hub are imported
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise FaceanimError('the demo needs Gradio: pip install "faceanim[demo]"') from None
    from faceanim.web.demo import DemoConfig, run_demo
    from faceanim.web.server import ServerConfig

    server = ServerConfig(host=host, port=port, queue_size=queue_size)
    run_demo(DemoConfig(bundles=bundles or ("toonface",), device=device, invert_steps=invert_steps), server,
             echo=click.echo)
