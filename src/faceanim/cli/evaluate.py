"""``faceanim evaluate`` and ``faceanim results`` (import torch only when they run)."""

from __future__ import annotations

import click

from faceanim.cli.options import bundle_option, device_option, faces_option, frames_option, out_option, prompt_option


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip()) if text else ()


@click.command("evaluate")
@bundle_option()
@click.option("--methods", "-m", default="ours,styleclip,mocogan", show_default=True,
              help="Comma-separated methods: ours, styleclip (StyleCLIP + interpolation), mocogan (text-free motion).")
@prompt_option(required=False, help="A prompt; repeat for several (ToonFace: keys like smile, cry, or phrases) "
                                    "[default: the bundle's example prompts; on ToonFace every prompt key].")
@faces_option(8)
@frames_option(16, help="Frames per video.")
@out_option("results", help="Output folder.")
@click.option("--evaluator", default=None,
              help="ToonEvaluator folder: ToonFace ground-truth scores (default: the bundle's, if it ships one).")
@click.option("--domain", default="auto", show_default=True,
              help="Face domain: auto (the bundle's), human, or one a plugin registers (toon for ToonFace).")
@click.option("--real", default=256, show_default=True, type=int, help="Real images for FID.")
@click.option("--real-dir", default=None, help="Folder of real aligned faces for FID (human faces).")
@click.option("--inception", default=None,
              help="torch-fidelity Inception-v3 weights (.pth): FID on Inception features instead of CLIP's.")
@click.option("--identity", default="auto", show_default=True,
              type=click.Choice(["auto", "dlib", "toon", "clip", "none"]),
              help="Identity features for ACD (auto: toon evaluator, else dlib on human faces).")
@click.option("--steps", default=300, show_default=True, type=click.IntRange(0), help="StyleCLIP optimization steps.")
@click.option("--seed", "-s", default=0, show_default=True, type=click.IntRange(0), help="First face seed.")
@click.option("--grid-faces", default=4, show_default=True, type=int, help="Faces per prompt grid video (0: none).")
@click.option("--grid-format", default="mp4", show_default=True, type=click.Choice(["mp4", "gif", "png"]))
@click.option("--save-videos", is_flag=True,
              help="Also write every video as OUT/videos/METHOD/PROMPT/faceNNN.mp4 (what `faceanim study` reads).")
@click.option("--bootstrap", default=2000, show_default=True, type=int, help="Bootstrap resamplings for the CIs.")
@device_option
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 256), help="Frames per generator call.")
def evaluate(bundle, methods, prompts, faces, frames, out, evaluator, domain, real, real_dir, inception, identity,
             steps, seed, grid_faces, grid_format, save_videos, bootstrap, device, batch_size) -> None:
    """Evaluate methods × prompts × faces: FID, ACD, CLIP alignment, identity, smoothness, ToonFace ground truth.

    Writes OUT/results.md (tables: means with 95% bootstrap confidence intervals, per prompt), OUT/results.json
    (every video's values too) and one video grid per prompt (rows: faces, columns: methods).
    """
    from faceanim.evaluation.run import EvalConfig

    cfg = EvalConfig(bundle=bundle, methods=_split(methods), prompts=tuple(prompts), faces=faces, frames=frames,
                     out=out, evaluator=evaluator, domain=domain, real=real, real_dir=real_dir, inception=inception,
                     identity=identity, steps=steps, seed=seed, grid_faces=grid_faces, grid_format=grid_format,
                     save_videos=save_videos, bootstrap=bootstrap, device=device, batch_size=batch_size)
    cfg.validate()  # bad options fail before any model loads

    from faceanim.evaluation.run import evaluate as run_evaluation
    from faceanim.utils.device import pick_device

    cfg.device = str(pick_device(device))
    results = run_evaluation(cfg)
    click.echo(f"wrote {out}/results.md and results.json ({len(results['videos'])} videos, "
               f"{results['seconds_total']:.1f} s)")
    for name, m in results["methods"].items():
        sec = m["overall"].get("seconds", {}).get("mean", float("nan"))
        extra = "".join(f", {k} {v:.4g}" for k, v in m["set"].items() if k == "fid" and v is not None)
        click.echo(f"  {name}: {sec:.2f} s/video{extra}")


@click.command("results")
@click.option("--suite", "-c", default="toonface", show_default=True,
              help="Suite: a packaged name (toonface) or a suite YAML file (see faceanim/evaluation/suites/).")
@out_option("results/toonface", help="Output folder: RESULTS.md, comparison/, ablations/NAME/{train,eval}/.")
@click.option("--page", default=None, help="Also write the page here (e.g. docs/RESULTS.md).")
@click.option("--fresh", is_flag=True, help="Redo every stage (default: reuse finished stages, resume training).")
@device_option
@click.option("--threads", default=None, type=click.IntRange(0),
              help="CPU threads (default: the suite's, 1 for toonface: its single-seed training runs change with the "
                   "thread count; 0: all cores, faster, other figures).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def results(suite, out, page, fresh, device, threads, quiet) -> None:
    """Reproduce the results page in one command: the comparison with the baselines (IV-C) and the ablations
    (IV-D, each trained from the bundle's generator and CLIP), then OUT/RESULTS.md, which is also printed.

    On the 2-core build machine the default suite takes under an hour on the CPU (the page states the time of
    every stage). An interrupted run continues: finished stages are reused, training resumes from its checkpoint.
    """
    import shlex
    from pathlib import Path

    from faceanim.evaluation.suite import SUITES, SuiteConfig

    path = SUITES / f"{suite}.yaml" if (SUITES / f"{suite}.yaml").is_file() else Path(suite)
    cfg = SuiteConfig.from_file(path)  # a bad suite fails before any model loads
    if threads is not None:
        cfg.threads = threads
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise click.UsageError(f"--out {out} exists and is not a folder")
    if page is not None and not Path(page).resolve().parent.is_dir():
        raise click.UsageError(f"--page: folder does not exist: {Path(page).parent}")

    from faceanim.evaluation.suite import Suite, render_page
    from faceanim.utils.device import pick_device
    from faceanim.utils.io import atomic_path

    summary = Suite(cfg, out_path, device=str(pick_device(device)), fresh=fresh, progress=not quiet,
                    log=lambda line: click.echo(line, err=True)).run()
    command = " ".join(["faceanim results --suite", shlex.quote(suite), "--out", shlex.quote(out)]
                       + (["--page", shlex.quote(page)] if page else [])
                       + (["--device", device] if device != "auto" else [])
                       + (["--threads", str(threads)] if threads is not None else []))
    text = render_page(summary, command)
    for target in [out_path / "RESULTS.md"] + ([Path(page)] if page else []):
        with atomic_path(target) as tmp:
            Path(tmp).write_text(text)
    click.echo(text)
