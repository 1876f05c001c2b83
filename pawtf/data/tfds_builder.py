"""A ``tensorflow_datasets`` builder, ``pawpularity``, for the Kaggle PetFinder data.

The competition data cannot be downloaded automatically (Kaggle needs a login
and accepting the rules), so the builder reads a local folder in the Kaggle
layout given as ``manual_dir`` (see :mod:`pawtf.data.folder`). Every row is
validated and every image decoded through :func:`pawtf.data.images.load_rgb`
(EXIF orientation, CMYK, alpha, 16-bit... all become clean RGB) before being
stored, re-encoded as JPEG.

Each example::

    {"image": uint8 (H, W, 3), "image_id": str,
     "metadata": float32 (12,)  # the flags, in pawtf.data.schema.FLAGS order
     "pawpularity": float32}    # -1.0 (UNKNOWN_PAWPULARITY) in the test split

Usage::

    >>> ds = load_pawpularity("~/kaggle/petfinder-pawpularity-score", split="train")  # doctest: +SKIP
    >>> ex = next(iter(ds)); ex["image"].shape, float(ex["pawpularity"])             # doctest: +SKIP
    (TensorShape([960, 720, 3]), 63.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from pawtf.data.folder import load_folder
from pawtf.data.images import DEFAULT_MAX_PIXELS, load_rgb
from pawtf.data.schema import FLAGS, ID_COLUMN, TARGET_COLUMN

__all__ = ["Pawpularity", "UNKNOWN_PAWPULARITY", "load_pawpularity"]

#: ``pawpularity`` value stored for test-split examples (which have no score).
UNKNOWN_PAWPULARITY = -1.0

_DESCRIPTION = """\
PetFinder.my Pawpularity: pet photos with 12 binary metadata flags and a
popularity score (0-100). Images are validated and normalised to RGB.
"""

_CITATION = """\
@misc{petfinder-pawpularity-score,
  author = {Addison Howard and Mongrel Jedi and Ryan Holbrook},
  title = {PetFinder.my - Pawpularity Contest},
  publisher = {Kaggle},
  year = {2021},
  url = {https://kaggle.com/competitions/petfinder-pawpularity-score}
}
"""


class Pawpularity(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the PetFinder Pawpularity data (manual download).

    ``skip_bad=True`` drops bad rows/images (reported via logging) instead of
    failing the build; ``max_pixels`` is the decompression-bomb limit.

    >>> builder = Pawpularity(data_dir="/tmp/tfds")                       # doctest: +SKIP
    >>> builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
    ...     manual_dir="/data/petfinder", try_download_gcs=False))         # doctest: +SKIP
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download the Kaggle competition data "PetFinder.my - Pawpularity Contest"
    (https://www.kaggle.com/competitions/petfinder-pawpularity-score/data),
    e.g. `kaggle competitions download -c petfinder-pawpularity-score`, unzip
    it, and pass that folder as `manual_dir`. It must contain train.csv and
    train/<Id>.jpg (test.csv and test/<Id>.jpg are optional).
    """

    def __init__(self, *, skip_bad: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS, **kwargs):
        self._skip_bad = skip_bad
        self._max_pixels = max_pixels
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                    "image_id": tfds.features.Text(),
                    "metadata": tfds.features.Tensor(shape=(len(FLAGS),), dtype=np.float32),
                    "pawpularity": tfds.features.Scalar(dtype=np.float32),
                }
            ),
            supervised_keys=("image", "pawpularity"),
            homepage="https://www.kaggle.com/competitions/petfinder-pawpularity-score",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = Path(dl_manager.manual_dir)
        splits = {}
        for split in ("train", "test"):
            if split == "test" and not (root / "test.csv").exists():
                continue
            df, problems = load_folder(
                root, split=split, skip_bad=self._skip_bad,
                max_pixels=self._max_pixels, progress=False,
            )
            for p in problems:
                tf.get_logger().warning("pawpularity: skipped %s", p)
            splits[split] = self._generate_examples(df)
        return splits

    def _generate_examples(self, df):
        flags = df[list(FLAGS)].to_numpy(dtype=np.float32)
        scores = (
            df[TARGET_COLUMN].to_numpy(dtype=np.float32)
            if TARGET_COLUMN in df.columns
            else np.full(len(df), UNKNOWN_PAWPULARITY, dtype=np.float32)
        )
        for i, (image_id, path) in enumerate(zip(df[ID_COLUMN], df["path"])):
            yield image_id, {
                "image": load_rgb(path, max_pixels=self._max_pixels),
                "image_id": image_id,
                "metadata": flags[i],
                "pawpularity": scores[i],
            }


def load_pawpularity(
    manual_dir: str | Path,
    data_dir: str | Path | None = None,
    split: str = "train",
    skip_bad: bool = False,
    **as_dataset_kwargs,
) -> tf.data.Dataset:
    """Build (once, cached in ``data_dir``) and return a split as a ``tf.data.Dataset``.

    ``manual_dir`` is the Kaggle-layout folder; ``data_dir`` defaults to tfds'
    own (``~/tensorflow_datasets``). Extra keyword arguments go to
    ``builder.as_dataset`` (e.g. ``shuffle_files=True``, ``as_supervised=True``).

    >>> ds = load_pawpularity("data/demo", data_dir="/tmp/tfds", split="train")  # doctest: +SKIP
    >>> sorted(next(iter(ds)).keys())                                             # doctest: +SKIP
    ['image', 'image_id', 'metadata', 'pawpularity']
    """
    builder = Pawpularity(
        data_dir=None if data_dir is None else str(data_dir), skip_bad=skip_bad
    )
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(Path(manual_dir).expanduser()), try_download_gcs=False
        )
    )
    return builder.as_dataset(split=split, **as_dataset_kwargs)
