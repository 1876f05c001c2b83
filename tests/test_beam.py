"""`pawtf predict --beam`: Apache Beam's RunInference on the exported SavedModel, on the DirectRunner,
scores as `pawtf predict` does with the same export (bad files get their error, the rest are scored)."""

from __future__ import annotations

import glob

import pandas as pd
import pytest

pytest.importorskip("apache_beam", reason="apache-beam is not installed: it is an optional extra (pip install "
                    "-e \".[beam]\", best in its own venv: it pins Pillow < 13; README: Beyond one machine)")

from pawtf.beam import predict_beam  # noqa: E402
from pawtf.cli import main  # noqa: E402
from pawtf.predict import load_scorer, predict  # noqa: E402


def test_beam_scores_as_predict_does(saved_base, photo_dir, tiny_demo, tmp_path):
    meta = tiny_demo / "train.csv"
    files = predict_beam(saved_base, [photo_dir, photo_dir / "missing.jpg"], tmp_path / "beam" / "scores", meta,
                         batch_size=4)
    assert files and all(f.endswith(".csv") for f in files)
    beam = pd.concat(pd.read_csv(f, keep_default_na=False) for f in files).set_index("path")
    local = {s.path: s for s in predict(load_scorer(saved_base), [photo_dir, photo_dir / "missing.jpg"], meta,
                                        progress=False)}
    assert sorted(beam.index) == sorted(local) and len(beam) == 11
    for path, s in local.items():
        if s.ok:
            assert float(beam.loc[path, "score"]) == pytest.approx(s.score, abs=1e-3)
        else:
            assert beam.loc[path, "score"] == "" and beam.loc[path, "error"] == s.error


def test_cli_beam_with_a_shard_and_refusals(saved_base, run_dir, photo_dir, tiny_demo, tmp_path, capsys):
    assert main(["predict", "--model", str(saved_base), str(tiny_demo / "train"), "--metadata",
                 str(tiny_demo / "train.csv"), "--beam", "--out", str(tmp_path / "s"), "--shard", "1/2",
                 "--quiet"]) == 0
    rows = pd.concat(pd.read_csv(f) for f in glob.glob(str(tmp_path / "s-*.csv")))
    assert 10 < len(rows) < 50 and rows.score.notna().all()
    assert "scores:" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="is a run folder; --beam scores with an export"):
        main(["predict", "--model", str(run_dir), str(photo_dir), "--beam", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="--beam needs --out PREFIX"):
        main(["predict", "--model", str(saved_base), str(photo_dir), "--beam"])
