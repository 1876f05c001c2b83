import json

import pytest

from pawtf.config import OversampleRule, RunConfig


def test_json_round_trip(tmp_path):
    cfg = RunConfig()
    cfg.model.metadata_units = (8, 16, 32)
    cfg.data.oversample = [OversampleRule(0, 5, ("flip", "crop_blur"))]
    cfg.save(tmp_path / "config.json")
    loaded = RunConfig.load(tmp_path / "config.json")
    assert loaded == cfg
    assert isinstance(loaded.model.metadata_units, tuple)
    assert loaded.data.oversample[0].views == ("flip", "crop_blur")


def test_unknown_setting_is_refused(tmp_path):
    d = RunConfig().to_dict()
    d["model"]["backbone_typo"] = "x"
    (tmp_path / "c.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="backbone_typo"):
        RunConfig.load(tmp_path / "c.json")


def test_defaults_are_the_study_oversampling():
    rules = RunConfig().data.oversample
    assert {(r.low, r.high, r.views) for r in rules} == {
        (0, 20, ("flip",)), (50, 100, ("flip",)), (0, 10, ("crop_blur",)), (60, 100, ("crop_blur",))}
