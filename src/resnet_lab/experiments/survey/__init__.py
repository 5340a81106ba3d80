"""The survey: the folklore of training deep nets, measured one switch at a time.

- ``design``: the cells (configurations) it runs, the rules, the claims (``CLAIMS``);
- ``cells``: measuring one cell with one seed (gradients at initialisation, a short run);
- ``spread``: one cell's per-seed runs combined (medians, min..max, outcome counts) for reading;
- ``run``: ``run_survey`` runs every cell with every seed and judges the claims; returns data;
- ``settings``: ``SurveySettings``, run_survey's keywords as one object, checked once, that its helpers take;
- ``concurrent``: with ``jobs=``, each cell and seed measured as a sweep run in a worker process;
- ``findings``: ``judge_claims``, one rule per claim, the evidence written apart from the rule;
  ``decide``, the one rule that turns per-seed answers into SUPPORTED / CONTRADICTED / INCONCLUSIVE;
- ``table``: the terminal table and text (``survey_table``, ``survey_text``);
- ``report``: ``write_survey_outputs`` writes survey.json, survey.md, the heat maps and report.html
  and returns their paths (``survey_markdown``, ``add_survey_section``);
- ``plot``: the heat maps (the only module here that imports matplotlib; imported when drawing).
"""

from ...lazy import lazy_exports

_MODULES = {
    ".cells": ["loss_summary", "measure_init_gradients"],
    ".design": ["CLAIMS", "DEFAULTS", "DEMO_SETTINGS", "DESIGN", "DIVERGE_FACTOR", "FULL_DESIGN", "LOSS_SMOOTH",
                "ORDER", "OUTCOMES", "TRAINED_DROP", "VANISH_RATIO", "VARIANTS", "cell_name"],
    ".findings": ["VERDICTS", "decide", "judge_claims", "trains_better"],
    ".report": ["add_survey_section", "survey_markdown", "write_survey_outputs"],
    ".run": ["run_survey"],
    ".spread": ["combine_runs"],
    ".table": ["claim_lines", "survey_table", "survey_text"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
