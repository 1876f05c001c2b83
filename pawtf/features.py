"""The feature bank: backbone features of photos, computed once, cached on disk by photo content.

A frozen backbone gives the same features for the same photo every time, so heads that stand on features
(the search's frozen-backbone trials, SVR and ridge heads, near-duplicate search) should never push a
photo through a backbone twice. :class:`FeatureBank` computes features per :class:`FeatureSpec`
(backbone, weights, image size, augmented view, level) and keeps them under its folder, keyed by the
SHA-1 of each photo file's bytes: a renamed or re-listed photo reuses what was computed, a second photo set
computes only its new photos, and two specs' features of the same photos can be joined column-wise.

Levels:

- ``pooled``: the global-average-pooled last feature map: what the popularity model's heads see
  (``image_pool``), computed by the model's own image half, so a head trained on it moves into the model.
- ``multilevel``: the global average of every block's output, then ``pooled``, concatenated (the
  MLSP / MultiGAP features of aesthetic-quality work: blur and contrast live in the early blocks). 3,088
  numbers a photo for Lite0, 3,736 for Lite2. Backbones whose blocks the registry knows.
- ``logits``: the 1,000 outputs of the backbone's ImageNet classifier before its softmax (the PetFinder
  1st place found them better than inner embeddings). Backbones whose classifier the registry knows,
  with ImageNet weights.
- ``technical``: the photo's technical measures (`pawtf.quality.technical`: sharpness, exposure,
  contrast, noise, JPEG blockiness, colourfulness...) on the image as the model sees it; the backbone
  only names the pass (and the size) they are computed in.
- ``composition``: where the pet is in the frame (`pawtf.quality.composition`: the pet locator's box as
  graph ops, then its share of the frame, offset from the centre and colour contrast with the
  background; all 0 when no cat or dog is found), on the image as the model sees it. The locator is
  Lite0 with its ImageNet head whatever the backbone, which again only names the pass and the size.

Storage: one folder per spec key, holding ``part-*.npz`` files (``hashes``, ``features``) written
atomically every few hundred photos; a killed extraction resumes from its last part, and concurrent
writers (the workers of a distributed search) never clash. Many parts are merged into one when read.

Example:

>>> bank = FeatureBank("cache/features")                                     # doctest: +SKIP
>>> specs = FeatureSpec.parse_list("efficientnet_lite0:pooled,efficientnet_lite2:logits")
>>> [s.key for s in specs]
['efficientnet_lite0-imagenet-224px-view0-pooled', 'efficientnet_lite2-imagenet-260px-view0-logits']
>>> bank.get(["a.jpg", "b.jpg"], specs).shape                                # doctest: +SKIP
(2, 2280)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["LEVELS", "FeatureBank", "FeatureSpec", "feature_model", "photo_hash"]

logger = logging.getLogger(__name__)

#: The feature levels a bank computes (see the module docstring).
LEVELS = ("pooled", "multilevel", "logits", "technical", "composition")

_PART_PHOTOS = 256  # photos per part file: what a kill can lose at most
_MERGE_PARTS = 32  # more parts than this in a folder are merged into one when read


def photo_hash(path: str | Path) -> str:
    """SHA-1 of the file's bytes: the bank's key for a photo (the same photo under any name or folder).

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile(delete=False) as f:
    ...     _ = f.write(b"abc")
    >>> photo_hash(f.name)
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    >>> os.remove(f.name)
    """
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One kind of feature: ``backbone`` (a registry name, or its short form ``lite0``) with ``weights``
    (``imagenet``, ``none`` or a weights file) at ``image_size`` px (None: the backbone's own), through
    augmented view ``view`` (0: the photo as it is; see `pawtf.data.views`), at ``level``. ``seed``
    only matters for random weights (``none``)."""

    backbone: str = "efficientnet_lite0"
    level: str = "pooled"
    weights: str = "imagenet"
    image_size: int | None = None
    view: int = 0
    seed: int = 0

    def __post_init__(self):
        from pawtf.models import backbones

        spec = backbones.get(backbones.resolve(self.backbone))
        object.__setattr__(self, "backbone", spec.name)
        object.__setattr__(self, "weights", "none" if self.weights in (None, "none") else str(self.weights))
        if self.image_size is None:
            object.__setattr__(self, "image_size", spec.default_size)
        if self.level not in LEVELS:
            raise ValueError(f"unknown feature level {self.level!r}; known: {', '.join(LEVELS)}")
        if self.level == "multilevel" and spec.block_outputs is None:
            raise ValueError(f"multilevel features need the backbone's blocks, which the registry knows "
                             f"for: {', '.join(backbones.with_blocks())}; {spec.name} is not one of them")
        if self.level == "logits" and (spec.imagenet_classifier is None or self.weights != "imagenet"):
            raise ValueError(f"logits are the outputs of an ImageNet classifier: they need --weights imagenet "
                             f"and a backbone whose classifier the registry knows "
                             f"({', '.join(backbones.with_classifier())}); got {spec.name} with "
                             f"weights {self.weights}")

    @classmethod
    def parse(cls, text: str, **fields) -> "FeatureSpec":
        """``BACKBONE[:LEVEL]`` (level ``pooled`` by default), the other fields from `fields`.

        >>> FeatureSpec.parse("lite2:logits").backbone
        'efficientnet_lite2'
        """
        backbone, _, level = text.strip().partition(":")
        return cls(backbone=backbone, level=level or "pooled", **fields)

    @classmethod
    def parse_list(cls, text: str, **fields) -> list["FeatureSpec"]:
        """Comma-separated :meth:`parse` items (the ``--features`` option)."""
        specs = [cls.parse(item, **fields) for item in text.split(",") if item.strip()]
        if not specs:
            raise ValueError("no features named: give BACKBONE[:LEVEL] items separated by commas, "
                             "e.g. efficientnet_lite0:pooled,efficientnet_lite2:logits")
        return specs

    @functools.cached_property
    def weights_key(self) -> str:
        if self.weights == "none":
            return f"none-seed{self.seed}"  # random weights: reproducible only for the same seed
        if self.weights == "imagenet":
            return "imagenet"
        return "file-" + photo_hash(self.weights)[:12]  # a weights file: by its content

    @property
    def key(self) -> str:
        """The name of this spec's folder in a bank."""
        return f"{self.backbone}-{self.weights_key}-{self.image_size}px-view{self.view}-{self.level}"

    @property
    def extractor_key(self) -> tuple:
        """Specs with the same extractor key are computed in one pass (one backbone, several levels)."""
        return self.backbone, self.weights, self.image_size, self.view, self.seed


class FeatureBank:
    """Features of photos per :class:`FeatureSpec`, on disk under `root`, computed only where missing.

    `progress` shows a bar (photos/s) while features are computed; `batch_size` photos go through the
    backbone at once (on the accelerator when there is one)."""

    def __init__(self, root: str | Path, batch_size: int = 32, progress: bool = True):
        self.root = Path(root)
        self.batch_size = batch_size
        self.progress = progress
        self.computed = 0  # photos pushed through a backbone by this bank (for benchmarks and tests)
        self._stores: dict[str, dict[str, np.ndarray]] = {}
        self._extractors: dict[tuple, Callable] = {}
        self._models: dict[tuple, object] = {}  # keras feature models, shared by views
        self._hashes: dict[str, str] = {}

    def get(self, photos: Sequence[str | Path], specs: FeatureSpec | Sequence[FeatureSpec],
            hashes: Sequence[str] | None = None) -> np.ndarray:
        """Features [len(photos), sum of the specs' dims] as float32, the specs' columns side by side in
        the order given. Photos are files (read by pawtf's decoder and resized as training does);
        `hashes` may give their :func:`photo_hash` when the caller knows them already."""
        specs = [specs] if isinstance(specs, FeatureSpec) else list(specs)
        photos = [str(p) for p in photos]
        hashes = list(hashes) if hashes is not None else [self.hash(p) for p in photos]
        groups: dict[tuple, list[FeatureSpec]] = {}
        for spec in specs:
            groups.setdefault(spec.extractor_key, []).append(spec)
        for group in groups.values():
            missing: dict[str, str] = {}
            for spec in group:
                store = self._store(spec)
                missing.update((h, p) for h, p in zip(hashes, photos) if h not in store)
            if missing:
                self._compute(group, list(missing.values()), list(missing))
        return np.concatenate([np.stack([self._stores[s.key][h] for h in hashes]) for s in specs],
                              axis=1).astype(np.float32)

    def hash(self, photo: str | Path) -> str:
        """:func:`photo_hash`, remembered for the bank's lifetime (by path, size and modification time)."""
        st = os.stat(photo)
        memo = f"{os.path.abspath(photo)}\0{st.st_size}\0{st.st_mtime_ns}"
        if memo not in self._hashes:
            self._hashes[memo] = photo_hash(photo)
        return self._hashes[memo]

    def dims(self, specs: Iterable[FeatureSpec]) -> list[int]:
        """Each spec's number of columns (from the cache; computes nothing)."""
        out = []
        for spec in specs:
            store = self._store(spec)
            if not store:
                raise ValueError(f"no features cached for {spec.key} under {self.root}")
            out.append(len(next(iter(store.values()))))
        return out

    # -- storage ------------------------------------------------------------------------------------

    def _folder(self, spec: FeatureSpec) -> Path:
        return self.root / spec.key

    def _store(self, spec: FeatureSpec) -> dict[str, np.ndarray]:
        if spec.key not in self._stores:
            self._stores[spec.key] = _read_parts(self._folder(spec))
        return self._stores[spec.key]

    def _write(self, spec: FeatureSpec, hashes: list[str], features: np.ndarray) -> None:
        folder = self._folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        _write_part(folder, hashes, features)
        self._stores[spec.key].update(zip(hashes, features))

    # -- computing ----------------------------------------------------------------------------------

    def _compute(self, group: list[FeatureSpec], photos: list[str], hashes: list[str]) -> None:
        import pandas as pd
        from tqdm.auto import tqdm

        from pawtf.data.pipeline import make_dataset

        first = group[0]
        extract = self._extractor(first, sorted({s.level for s in group}))
        levels = " + ".join(s.level for s in group)
        bar = tqdm(total=len(photos), unit="photo", disable=not self.progress, dynamic_ncols=True,
                   desc=f"features {first.backbone} {levels} -> {self.root}")
        for start in range(0, len(photos), _PART_PHOTOS):
            chunk, chunk_hashes = photos[start:start + _PART_PHOTOS], hashes[start:start + _PART_PHOTOS]
            ds = make_dataset(pd.DataFrame({"path": chunk}), first.image_size, self.batch_size,
                              with_target=False, with_metadata=False, cache=False)
            outputs: dict[str, list[np.ndarray]] = {}
            for batch in ds:
                for level, value in extract(batch["image"]).items():
                    outputs.setdefault(level, []).append(value.numpy())
                bar.update(len(value))
            for spec in group:
                self._write(spec, chunk_hashes, np.concatenate(outputs[spec.level]))
            self.computed += len(chunk)
        bar.close()

    def _extractor(self, spec: FeatureSpec, levels: list[str]) -> Callable:
        """One Keras feature model per backbone set-up and levels, shared by every view (each view is a
        traced function over it)."""
        key = (spec.extractor_key, tuple(levels))
        if key not in self._extractors:
            model_key = (dataclasses.replace(spec, view=0).extractor_key, tuple(levels))
            if model_key not in self._models:
                self._models[model_key] = feature_model(spec, levels)
            self._extractors[key] = _traced(self._models[model_key], spec)
        return self._extractors[key]


def feature_model(spec: FeatureSpec, levels: Sequence[str], name: str = "feature_extractor"):
    """A Keras model: 0-255 images [batch, size, size, 3] -> {level: features} for `spec`'s backbone,
    weights and size (its view and level aside). The bank computes with it, and a head trained on the
    bank's features serves on top of it (`pawtf.feature_heads`).

    ``pooled`` comes from the popularity model's own image half (`pawtf.models.popularity`); with random
    weights (``none``) it is built right after seeding Keras with the spec's seed, as training builds it,
    so its weights are those of a model built the same way (and Keras's random state is reseeded)."""
    import keras

    from pawtf.config import ModelConfig
    from pawtf.models import backbones
    from pawtf.models.popularity import EMBEDDING, IMAGE_INPUT, build_model, level_tensors

    registry = backbones.get(spec.backbone)
    weights = None if spec.weights == "none" else spec.weights
    if weights is None:  # random weights: those a model built with this seed has (this reseeds Keras)
        keras.utils.set_random_seed(spec.seed)
    model = build_model(ModelConfig(backbone=spec.backbone, weights=weights, image_size=spec.image_size,
                                    unfreeze=0, use_metadata=False))
    image, pooled = model.get_layer(IMAGE_INPUT).output, model.get_layer(EMBEDDING).output
    outputs = level_tensors(model, registry, image, pooled, [l for l in levels if l != "logits"])
    if "logits" in levels:
        kernel, bias = registry.imagenet_classifier()
        head = keras.layers.Dense(len(bias), name="imagenet_logits")
        outputs["logits"] = head(pooled)
        head.set_weights([kernel, bias])
    return keras.Model(image, {l: outputs[l] for l in levels}, name=name)


def _traced(extractor, spec: FeatureSpec) -> Callable:
    """A traced function: 0-255 images -> {level: features} of the Keras model `extractor`, through
    `spec`'s view."""
    import tensorflow as tf

    from pawtf.data.augment import ViewAugment

    augment = ViewAugment()
    view = spec.view

    @tf.function(input_signature=[tf.TensorSpec([None, spec.image_size, spec.image_size, 3], tf.float32)])
    def extract(images):
        if view:
            images = augment([images, tf.fill([tf.shape(images)[0]], view)], training=True)
        return extractor(images, training=False)

    return extract


def _read_parts(folder: Path) -> dict[str, np.ndarray]:
    """Every part's features by hash; more than _MERGE_PARTS parts are merged into one file first."""
    parts = sorted(folder.glob("part-*.npz")) if folder.is_dir() else []
    store: dict[str, np.ndarray] = {}
    readable = []
    for part in parts:
        try:
            with np.load(part) as f:
                store.update(zip(f["hashes"].tolist(), f["features"]))
            readable.append(part)
        except FileNotFoundError:  # merged away by another process meanwhile: its merge holds them
            continue
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            logger.warning("feature bank: %s is unreadable (%s); its photos are computed again", part, err)
            continue
    if len(readable) > _MERGE_PARTS:
        hashes = sorted(store)
        try:
            _write_part(folder, hashes, np.stack([store[h] for h in hashes]))
            for part in readable:
                part.unlink(missing_ok=True)
        except OSError as err:  # a read-only or shared bank: read it as it is
            logger.info("feature bank: could not merge the parts of %s (%s)", folder, err)
    return store


def _write_part(folder: Path, hashes: list[str], features: np.ndarray) -> None:
    """Atomically: written under a temporary name, then renamed (a reader never sees half a part)."""
    name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.npz"
    tmp = folder / f".{name}.tmp"
    with open(tmp, "wb") as f:
        np.savez(f, hashes=np.array(hashes), features=np.asarray(features, np.float32))
    os.replace(tmp, folder / name)
