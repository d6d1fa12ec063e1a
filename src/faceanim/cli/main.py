"""The ``faceanim`` command. ``main(argv)`` is callable from tests and returns the exit code."""

from __future__ import annotations

import os
import sys

import click

from faceanim import __version__
from faceanim.errors import FaceanimError
from faceanim.utils.interrupts import Interrupted

EXIT_USER_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="faceanim")
def cli() -> None:
    """Language-guided face animation (Hang et al.) on CPU, Apple MPS or CUDA.

    Environment: FACEANIM_HOME (where bundles, CLIP files, downloads and recipes live, default ~/.cache/faceanim),
    HF_HOME / HF_HUB_OFFLINE=1 / HF_TOKEN (hf:ORG/NAME bundles and open_clip downloads, via huggingface_hub),
    FACEANIM_NO_MALLOC_TUNING=1 (keep glibc's default allocator), FACEANIM_DEBUG=1 (tracebacks),
    TQDM_DISABLE=1 (no progress bars).
    """
    from faceanim.utils.perf import tune_allocator

    tune_allocator()  # once per process, for every command: keeps freed tensors in glibc's heap (≈2× on CPU)


def _register() -> None:
    """Every command, from its module under ``faceanim.cli`` (each imports only click at module level)."""
    from faceanim.cli.animate import animate
    from faceanim.cli.bundle import bundle, info
    from faceanim.cli.convert import convert
    from faceanim.cli.demo import demo
    from faceanim.cli.evaluate import evaluate, results
    from faceanim.cli.photo import align, invert
    from faceanim.cli.recipe import recipe
    from faceanim.cli.study import study
    from faceanim.cli.toon import toon
    from faceanim.cli.train import train

    for command in (animate, convert, recipe, train, bundle, info, align, invert, evaluate, results, toon, study,
                    demo):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line to stderr and return a non-zero code (no traceback)."""
    from faceanim.utils.interrupts import handle_signals

    with handle_signals():  # SIGTERM / SIGHUP end a command like Ctrl-C
        return _run(list(sys.argv[1:] if argv is None else argv))


def _run(args: list[str]) -> int:
    try:
        cli.main(args=args, prog_name="faceanim", standalone_mode=False)
    except FaceanimError as exc:
        click.echo(f"faceanim: error: {exc}", err=True)
        return EXIT_USER_ERROR
    except click.exceptions.Abort as exc:  # click turns Ctrl-C (and our SIGTERM / SIGHUP) into Abort
        if isinstance(exc.__cause__, Interrupted):
            import signal

            click.echo(f"faceanim: aborted ({signal.Signals(exc.__cause__.signum).name})", err=True)
            return 128 + exc.__cause__.signum
        click.echo("faceanim: aborted", err=True)
        return 130
    except click.UsageError as exc:  # parse-time mistakes: one line, like every other error
        from faceanim.cli.options import one_line

        click.echo(f"faceanim: error: {one_line(exc)}", err=True)
        return EXIT_USER_ERROR
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Interrupted as exc:
        import signal

        click.echo(f"faceanim: aborted ({signal.Signals(exc.signum).name})", err=True)
        return 128 + exc.signum
    except KeyboardInterrupt:
        click.echo("faceanim: interrupted", err=True)
        return 130
    except MemoryError:
        click.echo("faceanim: error: out of memory (try a smaller batch or resolution)", err=True)
        return 1
    except Exception as exc:  # last resort: one line, traceback only on request
        if os.environ.get("FACEANIM_DEBUG") == "1":
            raise
        click.echo(f"faceanim: internal error: {type(exc).__name__}: {exc} (set FACEANIM_DEBUG=1 for the traceback)",
                   err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
