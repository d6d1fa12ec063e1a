"""The human preference study of the paper's Table I (IV-B): pairs of videos from a ``faceanim evaluate`` run
(same face, same prompt, two methods), a balanced assignment of the pairs to raters with attention checks, a
SQLite store the rater pages write into, and the report (shares with Wilson intervals, binomial tests, Fleiss' κ).

- :mod:`faceanim.study.design`: :class:`StudyConfig`, reading the evaluate run, the assignment (:func:`plan_study`)
- :mod:`faceanim.study.store`: :class:`StudyStore` (SQLite, WAL, versioned schema) — create, answer, progress
- :mod:`faceanim.study.stats`: the statistics (scipy / statsmodels)
- :mod:`faceanim.study.report`: :func:`build_report`, :func:`render_markdown`

The HTTP server and the rater / admin pages are in :mod:`faceanim.web.study`; the commands in
:mod:`faceanim.cli.study`. Nothing here imports torch.
"""

from faceanim.study.design import QUESTIONS, StudyConfig, plan_study, read_evaluate_run
from faceanim.study.store import SCHEMA_VERSION, StudyStore, create_study

__all__ = ["QUESTIONS", "SCHEMA_VERSION", "StudyConfig", "StudyStore", "create_study", "plan_study",
           "read_evaluate_run"]
