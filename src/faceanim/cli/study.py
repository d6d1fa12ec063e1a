"""``faceanim study create | serve | report``: the human preference study of the paper's Table I."""

from __future__ import annotations

import click


@click.group("study")
def study() -> None:
    """Human preference study (A/B, three questions) on the videos of a `faceanim evaluate --save-videos` run."""


@study.command("create")
@click.option("--from", "source", required=True, help="Results folder of `faceanim evaluate --save-videos`.")
@click.option("--methods", "-m", default="ours,styleclip", show_default=True, help="The two methods compared.")
@click.option("--raters", default=24, show_default=True, type=int, help="Raters (one link each).")
@click.option("--per-rater", default=100, show_default=True, type=int, help="Pairs each rater judges.")
@click.option("--attention-rate", default=0.05, show_default=True, type=float,
              help="Attention checks per judged pair (added to each rater's pairs; 0: none).")
@click.option("--min-check-pass", default=0.75, show_default=True, type=float,
              help="Raters passing fewer of their answered attention checks are excluded from the report.")
@click.option("--allow-tie", is_flag=True, help='Offer "no preference" (the paper had none).')
@click.option("--seed", "-s", default=0, show_default=True, type=int, help="Seed of the assignment and sides.")
@click.option("--out", "-o", default="study.db", show_default=True, help="Study file to write (SQLite).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
def create(source, methods, raters, per_rater, attention_rate, min_check_pass, allow_tie, seed, out, force) -> None:
    """Create a study: pairs (same face and prompt, one video of each method), each rater's pairs in random order
    with sides at random, attention checks, one token per rater; everything in one SQLite file."""
    from faceanim.study import StudyConfig, create_study, plan_study, read_evaluate_run
    from faceanim.study.store import check_study_path

    cfg = StudyConfig(methods=tuple(m.strip() for m in methods.split(",") if m.strip()), raters=raters,
                      per_rater=per_rater, attention_rate=attention_rate, min_check_pass=min_check_pass,
                      allow_tie=allow_tie, seed=seed)
    cfg.validate()
    check_study_path(out, force)
    run = read_evaluate_run(source, cfg.methods)
    plan = plan_study(run, cfg)
    store = create_study(out, run, cfg, plan, force=force)
    n_pairs = len(run.pairs)
    per_pair = cfg.raters * cfg.per_rater / n_pairs
    click.echo(f"wrote {out}: {n_pairs} pairs ({len(run.prompts)} prompts), {cfg.raters} raters × {cfg.per_rater} "
               f"pairs + {cfg.checks_per_rater} attention checks, {per_pair:.2f} judgments per pair")
    if per_pair < 1:
        click.echo(f"  note: {n_pairs - cfg.raters * cfg.per_rater} pairs are shown to nobody "
                   f"(raise --raters or --per-rater)")
    click.echo(f"  exclusion rule: {store.meta['exclusion_rule']}")
    click.echo(f"  next: faceanim study serve {out}")


@study.command("serve")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface, for raters on other machines).")
@click.option("--port", default=7862, show_default=True, type=int, help="Port (0: any free port).")
def serve(db, host, port) -> None:
    """Serve the rater pages and the admin page of the study DB; prints the admin link and every rater link."""
    from faceanim.web.study import serve as run_server

    run_server(db, host=host, port=port, log=lambda line: click.echo(line, err=False))


@study.command("report")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--out", "-o", default=None, help="Folder for report.md and report.json (default: DB's name + _report).")
@click.option("--confidence", default=0.95, show_default=True, type=float, help="Level of the Wilson intervals.")
def report(db, out, confidence) -> None:
    """Table I from the answers so far: shares per question with Wilson intervals and binomial tests, per prompt,
    per rater, Fleiss' κ; raters failing the attention checks excluded (the rule is printed)."""
    import json
    from pathlib import Path

    from faceanim.study.report import build_report, render_markdown, to_json
    from faceanim.study.store import StudyStore
    from faceanim.utils.io import atomic_path

    store = StudyStore(db)
    rep = build_report(store, confidence)
    folder = Path(out) if out else Path(db).with_name(Path(db).stem + "_report")
    if folder.exists() and not folder.is_dir():
        raise click.UsageError(f"--out {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    text = render_markdown(rep)
    with atomic_path(folder / "report.json") as tmp:
        Path(tmp).write_text(json.dumps(to_json(rep), indent=1) + "\n")
    with atomic_path(folder / "report.md") as tmp:
        Path(tmp).write_text(text)
    click.echo(text)
    click.echo(f"wrote {folder}/report.md and report.json")
