"""What the subcommands share: their one-line summaries, defaults (from `pawtf.config` and the library's
constants, never literals), argument types and the options of commands that take photos and a model.

Importing this module is instant: nothing heavy is imported until a command runs.

>>> positive_int("3")
3
"""

from __future__ import annotations

import argparse
import os

from pawtf.config import AnalysisConfig, DataConfig, ExplainConfig, ModelConfig, TrainConfig

__all__ = ["ANALYSIS", "DATA", "EXPLAIN", "MODEL", "SAVED_MODELS", "SUMMARIES", "TRAIN", "add_model_options",
           "positive_int", "scorer_for", "weights_arg"]

DATA, MODEL, TRAIN = DataConfig(), ModelConfig(), TrainConfig()
EXPLAIN, ANALYSIS = ExplainConfig(), AnalysisConfig()
#: Where exports go unless told (TF Serving's model base path: saved_models/NAME/<version>).
SAVED_MODELS = "saved_models"

SUMMARIES = {
    "demo-data": "generate the synthetic demo dataset (Kaggle layout + masks)",
    "train": "train one fold and write a run folder",
    "cv": "train every fold; report mean and std RMSE",
    "baseline": "metadata-only models, K-fold RMSE; last line is JSON",
    "export": "export a run as a versioned SavedModel for TF Serving",
    "predict": "score photos: CSV of path, score, error",
    "rank": "rank one pet's photos best first and write a contact sheet",
    "crop": "crop advice: score candidate crops, save the best if it raises the score",
    "sensitivity": "how predictions move when photos are flipped, cropped, blurred, brightened, darkened, re-saved",
    "explain": "saliency maps (Grad-CAM++, gradients, RISE...) and their scores",
    "ensemble": "average finished score runs into one run (it exports and predicts like any run)",
    "distill": "train a small, fast student model on what a score or rater model predicts for photos",
    "features": "compute and keep backbone features of photos (the feature bank)",
    "app": "a local web page for shelter staff: drop a pet's photos, see them ranked, why, and better crops",
    "dedupe": "find groups of near-duplicate photos (mirrored, recompressed, cropped copies)",
    "analyze-metadata": ("what the 12 flags say about the score: per-flag effects, chi-square vs terciles, "
                         "logistic ranking, metadata-only RMSE"),
}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def score_range(text: str) -> tuple[float, float]:
    """``"0:85"`` -> (0.0, 85.0): a range of scores, 0 <= LOW < HIGH <= 100."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, e.g. 0:85, got {text!r}") from None
    if not 0 <= low < high <= 100:
        raise argparse.ArgumentTypeError(f"needs 0 <= LOW < HIGH <= 100, got {text!r}")
    return low, high


def shard_arg(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4): shard I of N, 1 <= I <= N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 1/4, got {text!r}") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"needs 1 <= I <= N, got {text!r}")
    return i, n


def weights_arg(text: str) -> str | None:
    if text.lower() == "none":
        return None
    if text != "imagenet" and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"expected imagenet, none or an existing file, got {text!r}")
    return text


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTO_OR_DIR", help="photos and folders of photos")
    p.add_argument("--model", required=True,
                   help="a run folder, or a SavedModel (saved_models/NAME for its latest version, or a "
                        "version folder)")
    p.add_argument("--metadata", metavar="CSV",
                   help="Id + the 12 flags per photo (Id = file name without extension); needed by models "
                        "that take the flags (without it they are all 0)")


def scorer_for(path):
    from pawtf.predict import load_scorer

    try:
        return load_scorer(path)
    except ValueError as err:
        raise SystemExit(f"pawtf: error: {err}")
