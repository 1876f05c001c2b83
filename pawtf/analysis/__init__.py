"""What the 12 PetFinder flags say about a photo's Pawpularity, and the study's hypotheses.

One concept per module:

* :mod:`pawtf.analysis.stats`: the statistics of each flag against the score (means with and without it,
  Welch's difference, Cohen's d, chi-square against score terciles, a logistic ranking for the top
  tercile with bootstrap rank intervals and a cross-validated AUC, Holm's adjustment);
* :mod:`pawtf.analysis.metadata`: :func:`analyze_metadata` puts them in one table per flag next to the
  metadata-only K-fold RMSE (:func:`pawtf.baseline.metadata_baselines`), in plain-language conclusions
  and in files (what ``pawtf analyze-metadata CSV --out DIR`` runs);
* :mod:`pawtf.analysis.plots`: :func:`plot_metadata`, the analysis in one figure;
* :mod:`pawtf.analysis.hypotheses`: the study's five hypotheses (:data:`HYPOTHESES`) and what the real
  table, a model trained on the demo data and saliency maps say about each (notebook 03 shows it all).

>>> from pawtf.analysis import analyze_metadata
>>> result = analyze_metadata("../shared/data/petfinder/train.csv", out="runs/metadata")  # doctest: +SKIP
>>> print(result.table())                      # the per-flag table            # doctest: +SKIP
>>> print("\\n".join(result.conclusions()))     # the findings in words         # doctest: +SKIP
"""

from pawtf.analysis.hypotheses import (HYPOTHESES, Hypothesis, demo_evidence, hypothesis_verdicts,
                                       real_evidence, saliency_evidence, sample_by_hypothesis)
from pawtf.analysis.metadata import MetadataAnalysis, analyze_metadata, analyze_table
from pawtf.analysis.plots import plot_metadata
from pawtf.analysis.stats import (DEFAULT_BOOTSTRAP, TERCILES, chi_square_terciles, combination_floor,
                                  effect_size, flag_effects, holm, logistic_ranking, score_terciles)

__all__ = [
    "DEFAULT_BOOTSTRAP", "TERCILES", "MetadataAnalysis", "analyze_metadata", "analyze_table",
    "chi_square_terciles", "combination_floor", "effect_size", "flag_effects", "holm", "logistic_ranking",
    "plot_metadata", "score_terciles", "Hypothesis", "HYPOTHESES", "real_evidence", "demo_evidence",
    "saliency_evidence", "hypothesis_verdicts", "sample_by_hypothesis",
]
