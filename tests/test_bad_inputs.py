"""The bad-input corpus (`bad_inputs`, beside this file) through every command that takes photos or
CSVs: no crash, no unclear error, no silently wrong result, no hang (apart from `KNOWN_DEFECTS`, in other
owners' modules), and every usable input used. The counts table is printed (``pytest -s``) and written to
``bad_inputs.txt`` in the test's tmp folder.

The run and its export come from tests/conftest.py (built, not trained); the corpus takes ~2 minutes.
"""

from __future__ import annotations

import logging

import bad_inputs

from pawtf.scorers import load_scorer


def test_bad_inputs_give_clear_errors_or_right_results(scorer, saved_base, tmp_path, caplog):
    caplog.set_level(logging.ERROR)  # the commands' warnings (no metadata given, ...) are expected here
    models = bad_inputs.Models(scorer, load_scorer(saved_base))
    results = bad_inputs.run_corpus(models, tmp_path / "corpus", timeout=120)
    table = bad_inputs.format_table(results)
    (tmp_path / "bad_inputs.txt").write_text(table + "\n")
    print(table)

    assert len({r.case for r in results}) >= 40
    assert {r.target for r in results} >= {"predict/run", "predict/savedmodel", "rank/savedmodel", "validate",
                                            "explain", "crop", "baseline", "predict --metadata"}
    failures = [r for r in results if r.outcome in bad_inputs.FAILURES
                and (r.case, r.target) not in bad_inputs.KNOWN_DEFECTS]
    assert not failures, table
    refused = [r for r in results if r.refused_valid]
    assert not refused, table
    # Every outcome was seen: the corpus exercises refusals and usable files alike.
    assert {r.outcome for r in results} >= {"clear error", "handled"}


def test_the_outcome_rules():
    """How one photo's result is classified (what the corpus test relies on)."""
    scorable = bad_inputs.PhotoCase("x", None, reference=lambda path: None)
    to_refuse = bad_inputs.PhotoCase("y", None, expect="refuse")
    judge = bad_inputs._judge_score
    assert judge(scorable, 40.0, None, 40.01, serving=False)[0] == "handled"
    assert judge(scorable, 40.0, None, 41.0, serving=False)[0] == "silently wrong"
    assert judge(scorable, 40.0, None, 40.2, serving=True)[0] == "handled"  # within the serving skew
    assert judge(to_refuse, 40.0, None, None, serving=False)[0] == "silently wrong"
    assert judge(to_refuse, None, "truncated or corrupt: image file is truncated", None, False)[0] == "clear error"
    assert judge(to_refuse, None, "jpeg::Uncompress failed. Invalid JPEG data", None, True)[0] == "unclear error"
    outcome, _, refused_valid = judge(scorable, None, "cannot identify image", 40.0, False)
    assert outcome == "clear error" and refused_valid
    assert bad_inputs._timed(lambda: 1, 5) == ("done", 1)
    status, err = bad_inputs._timed(lambda: {}["missing"], 5)
    assert status == "raised" and bad_inputs._raised(err) == "crash"
