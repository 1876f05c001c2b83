"""The study's five hypotheses, and what each kind of evidence says about them.

The published study proposed that a clear face with the tongue out, contrast between pet and
background, and accessories raise a photo's Pawpularity, and that an atypical pose and several pets or
a collage lower it. :data:`HYPOTHESES` names, for each, its proxy flags in the Kaggle table and the demo
images that have the property. Three kinds of evidence, one function each:

* :func:`real_evidence`: what the real table's flags say (from a
  :class:`~pawtf.analysis.metadata.MetadataAnalysis`);
* :func:`demo_evidence`: whether a model trained on the demo data, where each hypothesis is built in,
  reproduces the effect;
* :func:`saliency_evidence`: whether saliency maps of demo photos point at the regions that drive the
  score;

and :func:`hypothesis_verdicts` turns them into one line per kind of evidence (notebook 03 shows it all).

>>> [h.key for h in HYPOTHESES]
['face_tongue', 'contrast', 'accessory', 'pose', 'several']
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from pawtf.analysis.metadata import MetadataAnalysis
from pawtf.analysis.stats import ALPHA, NEGLIGIBLE_D, effect_size_word, flag_effects
from pawtf.data.schema import TARGET_COLUMN, read_table

__all__ = ["Hypothesis", "HYPOTHESES", "SALIENCY_SCORES", "real_evidence", "demo_evidence",
           "sample_by_hypothesis", "saliency_evidence", "hypothesis_verdicts"]


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One of the published study's hypotheses about what makes a pet photo popular.

    ``direction`` is +1 if the property should raise the score, -1 if it should lower it. ``flags`` are
    the Kaggle table's closest flags (``proxy`` says how close); ``demo`` selects the demo images that
    have the property from ``attributes.csv`` (``demo_rule`` says how, in words).
    """

    key: str
    claim: str
    direction: int
    flags: tuple[str, ...]
    proxy: str
    demo_rule: str
    demo: Callable[[pd.DataFrame], pd.Series]


HYPOTHESES: tuple[Hypothesis, ...] = (
    Hypothesis("face_tongue", "a clear face (both eyes) with the tongue out raises the score", +1,
               ("Face", "Eyes"), "partial: Face and Eyes cover the clear face; the table has no tongue flag",
               "tongue out, both eyes visible, frontal face",
               lambda a: (a["tongue"] > 0) & (a["eyes_visible"] == 1) & (a["face_mode"] == "front")),
    Hypothesis("contrast", "contrast between the pet and its background raises the score", +1,
               ("Subject Focus",), "indirect: Subject Focus = the pet stands out against an uncluttered "
               "background", "pet/background contrast >= 0.5 (of 1)", lambda a: a["contrast"] >= 0.5),
    Hypothesis("accessory", "accessories (collar, bow, hat) raise the score", +1, ("Accessory",),
               "direct: Accessory = a physical or digital accessory or prop", "any accessory",
               lambda a: a["accessory"].notna() & (a["accessory"].astype(str) != "")),
    Hypothesis("pose", "an atypical pose lowers the score", -1, ("Action",),
               "weak: Action = the pet is in the middle of an action (e.g. jumping); no pose flag",
               "head rotated 60-180 degrees", lambda a: a["odd_pose"] == 1),
    Hypothesis("several", "several pets or a collage lower the score", -1, ("Group", "Collage"),
               "direct: Group = more than one pet; Collage = a digitally combined photo",
               "2-4 pets, or a collage of 2-4 panels",
               lambda a: (a["n_subjects"] > 1) | (a["collage_panels"] > 0)),
)

#: The saliency-map scores :func:`saliency_evidence` averages.
SALIENCY_SCORES = ("energy_ratio", "pointing_hit", "insertion_auc", "deletion_auc")


# ---------------------------------------------------------------------------------------------------
# evidence 1: the real table


def _signs(row) -> dict[str, int]:
    """Test name -> direction (+1/-1) of every Holm-significant test of a ranking row."""
    out = {}
    if row["welch_p_holm"] < ALPHA:
        out["mean"] = int(np.sign(row["diff"]))
    if row["chi2_p_holm"] < ALPHA:
        out["terciles"] = int(np.sign(row["great_with"] - row["great_without"]))
    if row["logit_p_holm"] < ALPHA:
        out["logistic"] = int(np.sign(row["logit_coef"]))
    return out


def real_evidence(result: MetadataAnalysis,
                  hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Each hypothesis's proxy flags on a real table.

    Args:
        result: the analysis of the real table (:func:`~pawtf.analysis.metadata.analyze_metadata`).
        hypotheses: the hypotheses to weigh.

    Returns:
        One row per (hypothesis, flag): the flag's statistics (difference with its interval, Cohen's d,
        top-tercile shares, odds ratio, Holm p-values, ``effect_size``), ``significant_in`` (the
        Holm-significant tests) and ``agrees`` (whether those tests point the hypothesis's way: "yes",
        "no", "mixed" or "no evidence").

    Raises:
        KeyError: a hypothesis names a flag the analysis does not have.
    """
    rows = []
    for h in hypotheses:
        for flag in h.flags:
            r = result.flag(flag)
            signs = _signs(r)
            if not signs:
                agrees = "no evidence"
            elif all(v == h.direction for v in signs.values()):
                agrees = "yes"
            elif all(v != h.direction for v in signs.values()):
                agrees = "no"
            else:
                agrees = "mixed"
            rows.append({
                "hypothesis": h.key, "claim": h.claim, "expected": "+" if h.direction > 0 else "-",
                "flag": flag, "prevalence": r["prevalence"], "diff": r["diff"], "diff_lo": r["diff_lo"],
                "diff_hi": r["diff_hi"], "cohens_d": r["cohens_d"], "great_with": r["great_with"],
                "great_without": r["great_without"], "chi2_p_holm": r["chi2_p_holm"],
                "odds_ratio": r["odds_ratio"], "or_lo": r["or_lo"], "or_hi": r["or_hi"],
                "logit_p_holm": r["logit_p_holm"], "effect_size": r["effect_size"],
                "significant_in": ", ".join(signs) or "-", "agrees": agrees})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# evidence 2: a model trained on the demo data


def demo_evidence(demo_dir: str | Path, ids: Sequence[str] | None = None,
                  predictions: pd.Series | None = None,
                  hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Each hypothesis on the synthetic demo, where it is true by construction (:mod:`pawtf.data.demo`).

    Args:
        demo_dir: a demo data folder (``train.csv`` and ``attributes.csv``).
        ids: the images to use (e.g. a run's held-out rows); None: all.
        predictions: a model's predicted scores (a Series Id -> score), if any.
        hypotheses: the hypotheses to measure.

    Returns:
        One row per hypothesis: ``n_with``/``n_without`` (images with and without the property),
        ``true_diff`` (the noise-free score difference with - without: what the generator built in,
        confounders included), ``observed_diff`` with Welch's interval ``observed_lo``/``observed_hi``
        (the ``Pawpularity`` difference) and, with `predictions`, ``predicted_diff`` and ``recovered``
        (predicted / true difference; 1: the model reproduces the effect).

    Raises:
        FileNotFoundError: `demo_dir` lacks ``attributes.csv`` or ``train.csv``.
    """
    demo_dir = Path(demo_dir)
    attrs = pd.read_csv(demo_dir / "attributes.csv", dtype={"Id": str})
    table, _ = read_table(demo_dir / "train.csv")
    data = attrs.merge(table[["Id", TARGET_COLUMN]], on="Id")
    if ids is not None:
        data = data[data["Id"].isin(set(map(str, ids)))]
    if predictions is not None:
        data = data.assign(predicted=data["Id"].map(pd.Series(predictions)))
    rows = []
    for h in hypotheses:
        has = h.demo(data).to_numpy(bool)
        row = {"hypothesis": h.key, "claim": h.claim, "expected": "+" if h.direction > 0 else "-",
               "demo_rule": h.demo_rule, "n_with": int(has.sum()), "n_without": int((~has).sum()),
               "true_diff": math.nan, "observed_diff": math.nan, "observed_lo": math.nan,
               "observed_hi": math.nan, "predicted_diff": math.nan, "recovered": math.nan}
        if has.sum() >= 1 and (~has).sum() >= 1:
            clean = data["clean_score"]
            row["true_diff"] = float(clean[has].mean() - clean[~has].mean())
            eff = flag_effects(data.assign(has_property=has.astype(int)), flags=("has_property",)).iloc[0]
            row.update(observed_diff=eff["diff"], observed_lo=eff["diff_lo"], observed_hi=eff["diff_hi"])
            if predictions is not None:
                pred = data["predicted"].to_numpy(float)
                ok = ~np.isnan(pred)
                if (has & ok).any() and (~has & ok).any():
                    row["predicted_diff"] = float(pred[has & ok].mean() - pred[~has & ok].mean())
                    if abs(row["true_diff"]) > 1e-9:
                        row["recovered"] = row["predicted_diff"] / row["true_diff"]
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# evidence 3: saliency maps of demo photos


def sample_by_hypothesis(demo_dir: str | Path, ids: Sequence[str] | None = None, per_group: int = 6,
                         seed: int = 0, hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> list[str]:
    """Demo photos to explain, a few per hypothesis.

    Args:
        demo_dir: a demo data folder (``attributes.csv``).
        ids: the photos to draw from (e.g. a run's held-out rows); None: all.
        per_group: photos drawn with each hypothesis's property, and as many with none of them.
        seed: seed of the random draw.
        hypotheses: the hypotheses to cover.

    Returns:
        The photos' ids, without duplicates, in a stable order (the same for the same `seed`).

    Raises:
        FileNotFoundError: `demo_dir` lacks ``attributes.csv``.

    >>> sample_by_hypothesis("data/demo", per_group=4)[:2]      # doctest: +SKIP
    ['0a1b...', '1c2d...']
    """
    attrs = pd.read_csv(Path(demo_dir) / "attributes.csv", dtype={"Id": str})
    if ids is not None:
        attrs = attrs[attrs["Id"].isin(set(map(str, ids)))].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    chosen: dict[str, None] = {}
    masks = [h.demo(attrs).to_numpy(bool) for h in hypotheses]
    none = ~np.any(masks, axis=0) if masks else np.ones(len(attrs), bool)
    for has in [*masks, none]:
        pool = [i for i in attrs.loc[has, "Id"] if i not in chosen]
        for i in rng.permutation(len(pool))[:per_group]:
            chosen[pool[i]] = None
    return list(chosen)


def saliency_evidence(summary: pd.DataFrame | str | Path, demo_dir: str | Path,
                      hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """Saliency-map scores averaged per method, over all explained photos and per hypothesis.

    Args:
        summary: the ``summary.csv`` of :func:`pawtf.explain.batch.explain_files` (path or DataFrame),
            run on demo photos with ``masks_dir``.
        demo_dir: the demo data folder those photos come from (``attributes.csv``).
        hypotheses: the hypotheses to group by.

    Returns:
        One row per (group, method): ``group`` ("all photos" or a hypothesis key), ``method``, ``n``
        (maps averaged) and the means of :data:`SALIENCY_SCORES`: ``energy_ratio`` (map energy inside
        the ground-truth mask of the regions that drive the score, relative to a uniform map: 1 =
        chance), ``pointing_hit`` (share of maps whose maximum is in the mask), ``insertion_auc``
        (higher is better) and ``deletion_auc`` (lower is better). The ``random`` rows are the
        baseline every method must beat.

    Raises:
        FileNotFoundError: `summary` or the demo's ``attributes.csv`` is missing.
    """
    if not isinstance(summary, pd.DataFrame):
        summary = pd.read_csv(summary)
    attrs = pd.read_csv(Path(demo_dir) / "attributes.csv", dtype={"Id": str})
    data = summary.assign(image=summary["image"].astype(str)).merge(attrs, left_on="image", right_on="Id",
                                                                    how="left")
    groups = [("all photos", np.ones(len(data), bool))]
    known = data["Id"].notna().to_numpy()
    for h in hypotheses:
        groups.append((h.key, known & h.demo(data).fillna(False).to_numpy(bool)))
    rows = []
    for group, has in groups:
        for method in dict.fromkeys(data["method"]):
            sel = has & (data["method"] == method).to_numpy()
            row = {"group": group, "method": method, "n": int(sel.sum())}
            for col in SALIENCY_SCORES:
                values = pd.to_numeric(data.loc[sel, col], errors="coerce") if col in data else pd.Series()
                if col == "pointing_hit" and col in data:
                    values = data.loc[sel, col].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
                row[col] = float(values.mean()) if values.notna().any() else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------
# verdicts


def _real_verdict(rows: pd.DataFrame) -> str:
    """The real table's verdict on one hypothesis, from its :func:`real_evidence` rows."""
    parts = []
    for _, r in rows.iterrows():
        size = f"d~{r['effect_size']:.2f}, {effect_size_word(r['effect_size'])}"
        text = {"yes": f"agrees ({r['significant_in']}; {size})",
                "no": f"contradicts ({r['significant_in']}; {size})",
                "mixed": f"mixed ({r['significant_in']}; {size})",
                "no evidence": f"no detectable effect ({r['diff']:+.1f} points "
                               f"[{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}])"}[r["agrees"]]
        parts.append(f"{r['flag']}: {text}")
    supported = rows[(rows["agrees"] == "yes") & (rows["effect_size"] >= NEGLIGIBLE_D)]
    agree, against = (rows["agrees"] == "yes").any(), rows["agrees"].isin(["no", "mixed"]).any()
    if len(supported):
        head = "SUPPORTED"
    elif agree and against:
        head = "NOT SUPPORTED (mixed: negligible effects in both directions)"
    elif agree:
        head = "only negligible support"
    elif against:
        head = "NOT SUPPORTED (what is significant is negligible or points the other way)"
    else:
        head = "NOT SUPPORTED (no detectable effect)"
    return f"{head}. " + "; ".join(parts)


def _demo_verdict(d: pd.Series) -> str:
    """Whether the model recovers one hypothesis's built-in effect, from its :func:`demo_evidence` row."""
    if d["n_with"] == 0 or d["n_without"] == 0:
        return f"not measurable ({d['n_with']} photos with, {d['n_without']} without)"
    if math.isnan(d["predicted_diff"]):
        return (f"built in: {d['true_diff']:+.1f} points noise-free, observed {d['observed_diff']:+.1f} "
                f"({d['n_with']} photos)")
    k = d["recovered"]
    word = "recovered" if k >= 0.5 else "partly recovered" if k > 0.1 else "missed"
    return (f"{word}: model {d['predicted_diff']:+.1f} vs built-in {d['true_diff']:+.1f} points ({k:.0%}; "
            f"{d['n_with']} of {d['n_with'] + d['n_without']} held-out photos)")


def _saliency_verdict(s: pd.DataFrame) -> str:
    """The best method's scores against the random map's, from one hypothesis's
    :func:`saliency_evidence` rows."""
    maps, base = s[s["method"] != "random"], s[s["method"] == "random"]
    if maps.empty or maps["energy_ratio"].isna().all():
        return "no explained photos with this property"
    best = maps.loc[maps["energy_ratio"].idxmax()]
    b = base.iloc[0] if not base.empty else None
    scores = [("energy ratio", "energy_ratio", "{:.2f}", 1),
              ("pointing", "pointing_hit", "{:.0%}", 1),
              ("insertion", "insertion_auc", "{:.3f}", 1),
              ("deletion", "deletion_auc", "{:.3f}", -1)]  # sign: +1 higher is better
    parts, beats, loses = [], [], []
    for label, col, fmt, sign in scores:
        if math.isnan(best[col]):
            continue
        text = f"{label} {fmt.format(best[col])}"
        if b is not None and not math.isnan(b[col]):
            text += f" (random {fmt.format(b[col])})"
            (beats if sign * (best[col] - b[col]) > 0 else loses).append(label)
        parts.append(text)
    text = f"{best['method']} best: " + ", ".join(parts)
    if beats or loses:
        text += "; beats the random map on " + (", ".join(beats) or "nothing")
        text += (", not on " + ", ".join(loses)) if loses else ""
    return text + f" (n={int(best['n'])})"


def hypothesis_verdicts(real: pd.DataFrame | None = None, demo: pd.DataFrame | None = None,
                        saliency: pd.DataFrame | None = None,
                        hypotheses: Sequence[Hypothesis] = HYPOTHESES) -> pd.DataFrame:
    """A verdict on each hypothesis from each kind of evidence given.

    Only the real table can support or refute a hypothesis about real pets; the demo has the hypotheses
    built in, so its columns say whether the *model* learns a known effect and whether the *saliency
    maps* find the regions that drive the score.

    Args:
        real: :func:`real_evidence` rows, if any.
        demo: :func:`demo_evidence` rows, if any.
        saliency: :func:`saliency_evidence` rows, if any.
        hypotheses: the hypotheses to judge (each must have rows in the evidence given).

    Returns:
        One row per hypothesis: ``hypothesis, claim, real_flags, proxy`` and, per kind of evidence given,
        a sentence in ``real_table``, ``demo_model`` or ``saliency``.

    Raises:
        IndexError: `demo` has no row for a hypothesis.
    """
    rows = []
    for h in hypotheses:
        row = {"hypothesis": h.key, "claim": h.claim, "real_flags": ", ".join(h.flags), "proxy": h.proxy}
        if real is not None:
            row["real_table"] = _real_verdict(real[real["hypothesis"] == h.key])
        if demo is not None:
            row["demo_model"] = _demo_verdict(demo[demo["hypothesis"] == h.key].iloc[0])
        if saliency is not None:
            row["saliency"] = _saliency_verdict(saliency[(saliency["group"] == h.key) & (saliency["n"] > 0)])
        rows.append(row)
    return pd.DataFrame(rows)
