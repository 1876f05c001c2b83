"""pawtf.analysis.hypotheses: the evidence on the demo (where the hypotheses are built in), the verdicts,
and the real table's."""

import doctest

import pandas as pd
import pytest

import pawtf.analysis.hypotheses
from pawtf.analysis import (HYPOTHESES, demo_evidence, hypothesis_verdicts, real_evidence, saliency_evidence,
                            sample_by_hypothesis)


def test_doctests_pass():
    result = doctest.testmod(pawtf.analysis.hypotheses)
    assert result.attempted >= 1 and result.failed == 0


def test_demo_evidence_measures_what_a_model_recovers(tiny_demo):
    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str}).set_index("Id")
    perfect = demo_evidence(tiny_demo, predictions=attrs["clean_score"])
    assert list(perfect["hypothesis"]) == [h.key for h in HYPOTHESES]
    measurable = perfect[(perfect["n_with"] > 0) & (perfect["n_without"] > 0)]
    assert len(measurable) >= 3
    assert measurable["recovered"].to_numpy() == pytest.approx(1.0)  # predicting the truth recovers it all
    assert measurable["observed_lo"].le(measurable["observed_diff"]).all()
    flat = demo_evidence(tiny_demo, predictions=pd.Series(40.0, index=attrs.index))
    verdicts = hypothesis_verdicts(demo=flat)
    assert verdicts.loc[measurable.index, "demo_model"].str.startswith("missed").all()
    several = perfect.set_index("hypothesis").loc["several"]
    if several["n_with"]:
        assert several["true_diff"] < 0  # built in: several pets or a collage lower the score
    held_out = list(attrs.index[:20])
    assert demo_evidence(tiny_demo, ids=held_out)[["n_with", "n_without"]].sum(axis=1).eq(20).all()


def test_demo_verdicts_without_predictions_report_the_built_in_effect(tiny_demo):
    evidence = demo_evidence(tiny_demo)
    verdicts = hypothesis_verdicts(demo=evidence).set_index("hypothesis")["demo_model"]
    for _, row in evidence.iterrows():
        text = verdicts[row["hypothesis"]]
        if row["n_with"] and row["n_without"]:
            assert text.startswith(f"built in: {row['true_diff']:+.1f} points noise-free")
        else:
            assert text.startswith("not measurable")


def test_sample_by_hypothesis_covers_each_property_without_duplicates(tiny_demo):
    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str})
    sample = sample_by_hypothesis(tiny_demo, per_group=2, seed=3)
    assert len(sample) == len(set(sample)) and sample == sample_by_hypothesis(tiny_demo, per_group=2, seed=3)
    chosen = attrs[attrs["Id"].isin(sample)]
    for h in HYPOTHESES:
        if h.demo(attrs).any():
            assert h.demo(chosen).any(), h.key
    ids = list(attrs["Id"][:10])
    assert set(sample_by_hypothesis(tiny_demo, ids=ids, per_group=50)) == set(ids)


def test_saliency_evidence_averages_per_method_and_hypothesis(tiny_demo):
    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str})
    rows = []
    for i in attrs["Id"]:
        rows.append({"image": i, "method": "gradcam", "energy_ratio": 2.0, "pointing_hit": True,
                     "insertion_auc": 0.5, "deletion_auc": 0.2})
        rows.append({"image": i, "method": "random", "energy_ratio": 1.0, "pointing_hit": False,
                     "insertion_auc": 0.4, "deletion_auc": 0.3})
    result = saliency_evidence(pd.DataFrame(rows), tiny_demo)
    everything = result[result["group"] == "all photos"].set_index("method")
    assert everything.loc["gradcam", "n"] == len(attrs)
    assert everything.loc["gradcam", "energy_ratio"] == 2.0
    assert everything.loc["random", "pointing_hit"] == 0.0
    several = result[(result["group"] == "several") & (result["method"] == "gradcam")].iloc[0]
    assert several["n"] == int(((attrs["n_subjects"] > 1) | (attrs["collage_panels"] > 0)).sum())
    text = hypothesis_verdicts(saliency=result).set_index("hypothesis").loc["several", "saliency"]
    assert "gradcam best: energy ratio 2.00 (random 1.00)" in text
    assert "insertion 0.500 (random 0.400)" in text
    assert "beats the random map on energy ratio, pointing, insertion, deletion" in text


def test_saliency_verdict_names_what_the_best_map_loses_on(tiny_demo):
    attrs = pd.read_csv(tiny_demo / "attributes.csv", dtype={"Id": str})
    rows = []
    for i in attrs["Id"]:
        rows.append({"image": i, "method": "rise", "energy_ratio": 1.5, "pointing_hit": False,
                     "insertion_auc": 0.3, "deletion_auc": 0.4})
        rows.append({"image": i, "method": "random", "energy_ratio": 1.0, "pointing_hit": True,
                     "insertion_auc": 0.4, "deletion_auc": 0.3})
    verdicts = hypothesis_verdicts(saliency=saliency_evidence(pd.DataFrame(rows), tiny_demo))
    text = verdicts.set_index("hypothesis").loc["several", "saliency"]
    assert "rise best" in text
    assert "beats the random map on energy ratio, not on pointing, insertion, deletion" in text
    strangers = pd.DataFrame(rows).assign(image="not-a-demo-photo")  # no hypothesis's property known
    assert hypothesis_verdicts(saliency=saliency_evidence(strangers, tiny_demo))["saliency"].eq(
        "no explained photos with this property").all()


def test_real_table_does_not_support_the_hypotheses(real):
    result, _ = real
    evidence = real_evidence(result)
    assert set(evidence["flag"]) == {"Face", "Eyes", "Subject Focus", "Accessory", "Action", "Group",
                                     "Collage"}
    assert (evidence["effect_size"] < 0.2).all()
    verdicts = hypothesis_verdicts(real=evidence).set_index("hypothesis")["real_table"]
    assert all(verdicts[k].startswith("NOT SUPPORTED") for k in ("contrast", "accessory", "pose", "several"))
    assert "Eyes: contradicts" in verdicts["face_tongue"] and "Face: agrees" in verdicts["face_tongue"]
