"""The shared base of every saliency method: a model bound to a target, maps normalised to [0, 1].

An :class:`Explainer` binds a popularity model (a flat functional ``keras.Model`` taking ``image`` and,
unless image-only, ``metadata``) and a :class:`Target` (which output unit to explain; the score by
default). Calling it explains a batch of photos with each photo's metadata held fixed::

    >>> from pawtf.explain import make_explainer          # doctest: +SKIP
    >>> explainer = make_explainer("vanilla", model)      # doctest: +SKIP
    >>> maps = explainer(images, metadata)                # doctest: +SKIP
    >>> maps.shape, maps.dtype, float(maps.max())         # doctest: +SKIP
    ((8, 224, 224), dtype('float32'), 1.0)

``images`` are float32 ``[N, H, W, 3]`` raw RGB pixels in 0-255 (the model preprocesses them itself),
``metadata`` float32 ``[N, 12]`` (or ``None`` for an image-only model). Each map is min-max normalised
per image to [0, 1]; a map with no variation at all (e.g. a gradient that is zero everywhere) comes
back as all zeros. Methods that draw random numbers take a ``seed`` and give the same maps for the same
seed, whatever the batch.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from pawtf import tasks

__all__ = ["Explainer", "Target", "normalize_maps", "pre_activation_tensor", "resize_maps", "target_for"]

IMAGE_INPUT = "image"
METADATA_INPUT = "metadata"

# Final layers that only squash or rescale the output monotonically; gradient methods look through them
# (tf-keras-vis's ReplaceToLinear does not work on a Keras 3 ReLU *layer*: it sets `.activation`).
_MONOTONE_HEAD_LAYERS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.Rescaling,
                         keras.layers.Identity)


@dataclasses.dataclass(frozen=True)
class Target:
    """What a map explains: unit ``unit`` of model output ``output`` (an index or an output name).

    The default (``output=None``) is the Pawpularity score: the ``pawpularity`` output where the model
    has one, else its first output. :func:`target_for` builds one for a task from a name (``score``, a
    flag, a bucket label). With ``linear=True``
    (default) gradient methods explain the value *before* the output's final monotone layers (ReLU,
    sigmoid, rescaling), as tf-keras-vis recommends with ``ReplaceToLinear``: the normalised maps are the
    same wherever the ReLU is active, and stay meaningful where it is not (a prediction clipped at 0
    has zero gradient). Perturbation methods (RISE, the scores) always use the real output.
    """

    output: int | str | None = None
    unit: int = 0
    linear: bool = True

    def output_index(self, model: keras.Model) -> int:
        if self.output is None:
            names = list(model.output_names)
            return names.index(tasks.SCORE_OUTPUT) if tasks.SCORE_OUTPUT in names else 0
        if isinstance(self.output, int):
            if not -len(model.outputs) <= self.output < len(model.outputs):
                raise ValueError(f"model has {len(model.outputs)} output(s); no output {self.output}")
            return self.output % len(model.outputs)
        names = list(model.output_names)
        if self.output not in names:
            raise ValueError(f"model has no output {self.output!r}; outputs: {', '.join(names)}")
        return names.index(self.output)

    def select(self, outputs) -> tf.Tensor:
        """The target's values [N] from one output tensor [N, units] (or [N])."""
        outputs = tf.convert_to_tensor(outputs)
        if outputs.shape.rank == 1:
            return outputs
        return outputs[:, self.unit]


def target_for(task: tasks.Task, name: str | None = None) -> Target:
    """The :class:`Target` called `name` for a model of `task`: ``score`` (Pawpularity), a flag name (its
    predicted probability, e.g. ``Eyes``: "where does the model see the eyes?") or a bucket label (its
    class probability). Case and ``_`` for spaces do not matter.

    Args:
        task: the model's task (``run.task``).
        name: the target; None: the task's default (the score, or ``Great`` for buckets).

    Raises:
        ValueError: naming the task's targets.
    """
    chosen = task.explain_target(name)
    return Target(chosen.output, chosen.unit)


def pre_activation_tensor(model: keras.Model, index: int):
    """The symbolic tensor feeding output `index`'s trailing monotone layers (ReLU/sigmoid/rescale)."""
    tensor = model.outputs[index]
    layer = tensor._keras_history.operation
    while isinstance(layer, _MONOTONE_HEAD_LAYERS):
        if isinstance(layer, keras.layers.Rescaling) and not np.all(np.asarray(layer.scale) > 0):
            break
        if isinstance(layer, keras.layers.Activation) and getattr(layer.activation, "__name__", "") \
                not in ("relu", "sigmoid", "linear", "softplus", "elu", "tanh", "relu6"):
            break
        parent = layer.input
        if isinstance(parent, (list, tuple)):
            break
        tensor = parent
        layer = tensor._keras_history.operation
        if isinstance(layer, keras.layers.InputLayer):
            break
    return tensor


def normalize_maps(maps) -> np.ndarray:
    """Min-max normalise each map of ``[N, H, W]`` to [0, 1] (float32); flat maps become zeros.

    >>> normalize_maps(np.array([[[1., 3.], [2., 5.]], [[7., 7.], [7., 7.]]])).tolist()
    [[[0.0, 0.5], [0.25, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]
    """
    maps = np.asarray(maps, dtype=np.float64)
    maps = np.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scale = np.maximum(np.abs(maps).max(axis=(1, 2), keepdims=True), 1e-30)
    flat = span <= 1e-6 * scale  # relative: tiny but real gradients are kept
    out = np.where(flat, 0.0, (maps - low) / np.where(flat, 1.0, span))
    return out.astype(np.float32)


def resize_maps(maps, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of maps ``[N, h, w]`` to ``size=(H, W)`` (how CAMs reach the photo's size)."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == tuple(size):
        return maps
    return tf.image.resize(maps[..., None], size, method="bilinear").numpy()[..., 0]


class Explainer:
    """Base of every method: binds a model and a target; ``__call__`` gives maps ``[N, H, W]`` in [0, 1].

    Subclasses implement :meth:`explain` (raw maps, any scale) and set ``name`` (the CLI name).
    ``batch_size`` bounds how many images go through the model at once.
    """

    name: ClassVar[str] = ""
    #: The method's name for people (figure captions, reports).
    label: ClassVar[str] = ""
    #: Whether the method draws random numbers (then ``seed`` makes it reproducible).
    random: ClassVar[bool] = False

    def __init__(self, model: keras.Model, target: Target | None = None, *, seed: int = 0,
                 batch_size: int = 16):
        if not isinstance(model, keras.Model):
            raise TypeError(f"expected a keras.Model, got {type(model).__name__}")
        names = [t.name for t in model.inputs]
        if IMAGE_INPUT not in names:
            raise ValueError(f"model has no {IMAGE_INPUT!r} input (inputs: {', '.join(names)}); "
                             "is it a pawtf popularity model?")
        extra = sorted(set(names) - {IMAGE_INPUT, METADATA_INPUT})
        if extra:
            raise ValueError(f"unexpected model inputs {extra}; expected {IMAGE_INPUT!r} and optionally "
                             f"{METADATA_INPUT!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.target = target or Target()
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.input_names = names
        self.uses_metadata = METADATA_INPUT in names
        self.metadata_size = (int(model.inputs[names.index(METADATA_INPUT)].shape[-1])
                              if self.uses_metadata else 0)
        self._output_index = self.target.output_index(model)
        self._forward = None

    # ----------------------------------------------------------------------------------- public
    def __call__(self, images, metadata=None) -> np.ndarray:
        """Maps ``[N, H, W]`` float32 in [0, 1] for ``images`` [N, H, W, 3] (0-255) and ``metadata``."""
        images, metadata = self.check_inputs(images, metadata)
        if len(images) == 0:
            return np.zeros(images.shape[:3], np.float32)
        maps = self.explain(images, metadata)
        return normalize_maps(maps)

    def explain(self, images: np.ndarray, metadata: np.ndarray | None) -> np.ndarray:
        """Raw maps ``[N, H, W]`` (any scale; higher = more important). Inputs are already checked."""
        raise NotImplementedError

    def predict(self, images, metadata=None) -> np.ndarray:
        """The target's values ``[N]`` (the model's real output, e.g. the 0-100 score), in batches."""
        images, metadata = self.check_inputs(images, metadata)
        out = []
        for start in range(0, len(images), self.batch_size):
            sl = slice(start, start + self.batch_size)
            m = None if metadata is None else metadata[sl]
            out.append(self.forward(tf.constant(images[sl]), None if m is None else tf.constant(m)))
        return np.concatenate([o.numpy() for o in out]) if out else np.zeros(0, np.float32)

    def forward(self, images: tf.Tensor, metadata: tf.Tensor | None) -> tf.Tensor:
        """Compiled forward pass: target values ``[B]`` (real output) for a batch of tensors."""
        if self._forward is None:
            self._forward = tf.function(self.target_values, reduce_retracing=True)
        return self._forward(images, metadata)

    def target_values(self, images, metadata) -> tf.Tensor:
        """The target's values ``[B]`` of the model's real output (traceable inside ``tf.function``)."""
        outputs = self.model(self.model_inputs(images, metadata), training=False)
        if isinstance(outputs, dict):
            outputs = [outputs[n] for n in self.model.output_names]
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return tf.cast(self.target.select(outputs[self._output_index]), tf.float32)

    # ---------------------------------------------------------------------------------- helpers
    def model_inputs(self, images, metadata) -> list:
        """The inputs as a list in ``model.inputs`` order."""
        return [images if n == IMAGE_INPUT else metadata for n in self.input_names]

    def check_inputs(self, images, metadata) -> tuple[np.ndarray, np.ndarray | None]:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 3:
            raise ValueError(f"images must be a batch [N, H, W, 3]; got one image {images.shape} "
                             "(use images[None])")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be float32 [N, H, W, 3] RGB 0-255, got shape {images.shape}")
        expected = tuple(self.model.inputs[self.input_names.index(IMAGE_INPUT)].shape[1:3])
        if None not in expected and images.shape[1:3] != expected:
            raise ValueError(f"the model takes {expected[0]}x{expected[1]} images, got "
                             f"{images.shape[1]}x{images.shape[2]}")
        if len(images) and images.max() <= 1.0 + 1e-6 and images.max() > 0:
            warnings.warn("images look scaled to [0, 1]; pawtf models take raw 0-255 pixels",
                          stacklevel=3)
        if not self.uses_metadata:
            return images, None
        if metadata is None:
            raise ValueError(f"this model takes the {self.metadata_size} metadata flags as well: pass "
                             f"metadata [N, {self.metadata_size}] (held fixed while explaining)")
        metadata = np.asarray(metadata, dtype=np.float32)
        if metadata.ndim == 1:
            metadata = np.broadcast_to(metadata, (len(images), metadata.shape[0]))
        if metadata.shape != (len(images), self.metadata_size):
            raise ValueError(f"metadata must be [{len(images)}, {self.metadata_size}], got "
                             f"{metadata.shape}")
        return images, np.ascontiguousarray(metadata)

    def batches(self, n: int):
        for start in range(0, n, self.batch_size):
            yield slice(start, min(n, start + self.batch_size))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target}, seed={self.seed})"
