"""Evaluation (section IV): the paper's metrics (FID, ACD) and more as registered functions, the baselines
(StyleCLIP + interpolation, a MoCoGAN-HD-style random motion) behind the pipeline's call, and the
``faceanim evaluate`` run that writes results.md / results.json.

    from faceanim.evaluation import METRICS, register_metric, Video, MetricContext
    from faceanim.evaluation import StyleCLIPInterpolation, RandomMotion, Ours, EvalConfig, evaluate

Names load on first use (no torch import at ``faceanim --help``).
"""

from importlib import import_module

_HOME = {
    **{n: "registry" for n in ("Metric", "register_metric", "get_metrics")},
    **{n: "metrics" for n in ("Video", "MetricContext", "frechet_distance", "feature_stats", "content_distance",
                              "average_content_distance", "latent_step", "latent_acceleration", "pixel_flicker",
                              "spearman_rho", "nondecreasing_fraction", "toon_scores", "bootstrap_ci")},
    **{n: "features" for n in ("CLIPImageFeatures", "InceptionFeatures", "CLIPIdentity", "EvaluatorIdentity",
                               "DlibFaceDescriptor")},
    **{n: "baselines" for n in ("METHODS", "Ours", "StyleCLIPConfig", "StyleCLIPInterpolation", "RandomMotion",
                                "RandomMotionConfig", "motion_step_size")},
    **{n: "run" for n in ("EvalConfig", "evaluate", "render_markdown")},
}
__all__ = sorted([*_HOME, "METRICS"])


def __getattr__(name: str):
    if name == "METRICS":  # the registry with the built-in metrics registered
        return import_module("faceanim.evaluation.registry").get_metrics()
    if name in _HOME:
        return getattr(import_module(f"faceanim.evaluation.{_HOME[name]}"), name)
    raise AttributeError(f"module 'faceanim.evaluation' has no attribute {name!r}")
