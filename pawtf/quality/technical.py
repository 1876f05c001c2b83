"""Technical and composition measures of a photo, as TensorFlow ops (no Python per image).

Every measure is a few TensorFlow ops over the whole batch, so the functions run under ``tf.function``
with unknown batch size, height and width and can sit inside an exported SavedModel (the rater's
"good photo or retake?" model takes them as inputs beside the backbone's features). Images are float32
RGB in 0-255, ``[N, H, W, 3]``; luminance is Rec. 601, ``Y = 0.299 R + 0.587 G + 0.114 B`` (0-255).

:data:`TECHNICAL_MEASURES` (the columns of :func:`technical_measures`, in order):

======================  =====================================================================================
``sharpness``           ``log1p(var(laplacian(Y)))``, the 4-neighbour 3x3 Laplacian, 'VALID' (no border)
``brightness``          ``mean(Y) / 255``
``shadows_clipped``     share of pixels with ``Y <= 5``
``highlights_clipped``  share of pixels with ``Y >= 250``
``contrast``            RMS contrast, ``std(Y) / 255``
``noise``               Immerkaer's noise sigma in grey levels, ``sqrt(pi/2) / (6 (W-2)(H-2)) sum |Y * M|``
``blockiness``          JPEG 8x8 blocking: mean ``|dY|`` across block boundaries / elsewhere (1 = none)
``colourfulness``       Hasler & Suesstrunk: ``sqrt(s_rg^2 + s_yb^2) + 0.3 sqrt(m_rg^2 + m_yb^2)``, / 255
``megapixels``          ``height x width / 1e6`` of the photo before any resize (or of the tensor)
======================  =====================================================================================

:data:`COMPOSITION_MEASURES` (the columns of :func:`composition_measures`, from the pet's box):
``subject_share`` (box area / frame area), ``subject_offset`` (box centre to frame centre, a corner
is 1), ``subject_contrast`` (distance between the mean colours inside and outside the box, / 255).
:data:`MEASURE_DESCRIPTIONS` says each in plain words, for explanations ("too dark", "blurry").

Which image to measure: ``sharpness``, ``noise`` and ``blockiness`` depend on scale (a resize blurs,
averages noise away and moves the JPEG grid off multiples of 8), so they compare photos measured at the
same size; ``blockiness`` means most on the decoded photo at its stored size. The others barely change
with a resize.

Measured (``tests/quality/test_technical.py``'s pictures and 5 real cat photos): Immerkaer's estimate on
a flat grey picture plus N(0, 10) noise is 9.8-10.3 at 64 px, 9.9-10.2 at 128 px. Blockiness of a
generated 90x100 picture: 0.93 as drawn, 2.29 / 1.41 / 1.27 / 1.07 / 0.93 saved at JPEG quality 10 / 30
/ 50 / 75 / 95; the real photos (already JPEGs, 360-500 px) 1.13-1.47 as stored, 2.0-4.3 re-saved at
quality 10, and 0.86-1.05 once resized to 224 px (the grid is gone).

>>> import numpy as np
>>> flat = np.full((1, 32, 48, 3), 128, np.float32)          # a flat grey picture
>>> values = technical_measures(flat, original_sizes=[[3000, 4000]]).numpy()[0]
>>> {name: round(float(v), 3) for name, v in zip(TECHNICAL_MEASURES, values)}
{'sharpness': 0.0, 'brightness': 0.502, 'shadows_clipped': 0.0, 'highlights_clipped': 0.0, 'contrast': 0.0,
 'noise': 0.0, 'blockiness': 1.0, 'colourfulness': 0.0, 'megapixels': 12.0}
>>> box = [[0.0, 0.0, 1.0, 0.5]]                              # the left half of the frame
>>> [round(float(v), 3) for v in composition_measures(flat, box)[0]]   # share, offset, contrast
[0.5, 0.354, 0.0]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

if TYPE_CHECKING:
    from pawtf.quality.subject import Subject

__all__ = ["BLOCK", "COMPOSITION_MEASURES", "HIGHLIGHT_LEVEL", "MEASURE_DESCRIPTIONS", "NO_SUBJECT",
           "SHADOW_LEVEL", "TECHNICAL_MEASURES", "TechnicalMeasures", "composition_measures", "luminance",
           "normalised_box", "technical_measures"]

TECHNICAL_MEASURES = ("sharpness", "brightness", "shadows_clipped", "highlights_clipped", "contrast", "noise",
                      "blockiness", "colourfulness", "megapixels")
COMPOSITION_MEASURES = ("subject_share", "subject_offset", "subject_contrast")

MEASURE_DESCRIPTIONS = {
    "sharpness": "how crisp the edges are (log of 1 + the variance of the Laplacian of the grey image); "
                 "low means blurry or out of focus",
    "brightness": "mean luminance from 0 (black) to 1 (white); low means too dark, high means washed out",
    "shadows_clipped": "share of pixels that are black or nearly (luminance 5 of 255 or less): lost shadows",
    "highlights_clipped": "share of pixels that are white or nearly (luminance 250 of 255 or more): "
                          "blown highlights",
    "contrast": "spread of luminance (its standard deviation / 255); low means flat or hazy",
    "noise": "estimated sensor noise in grey levels (Immerkaer's method); high means grainy",
    "blockiness": "JPEG 8x8 block edges: 1 means none, above 1 means visible blocks from heavy compression",
    "colourfulness": "how vivid and varied the colours are (Hasler and Suesstrunk); 0 means grey",
    "megapixels": "size of the original photo in millions of pixels; low means small or cropped hard",
    "subject_share": "share of the frame that the pet's box covers (0 when no pet is found)",
    "subject_offset": "how far the pet's box centre is from the frame's centre, 0 centred, 1 in a corner "
                      "(0 when no pet is found)",
    "subject_contrast": "how different the pet's mean colour is from the background's (0 when the pet "
                        "fills the frame or no pet is found)",
}

#: Luminance at or below which a pixel counts as clipped to black (0-255).
SHADOW_LEVEL = 5.0
#: Luminance at or above which a pixel counts as clipped to white (0-255).
HIGHLIGHT_LEVEL = 250.0
#: The JPEG block side: block boundaries fall between pixel rows (columns) 8k-1 and 8k.
BLOCK = 8
#: The box of "no pet found" (any negative or non-finite coordinate means the same).
NO_SUBJECT = (-1.0, -1.0, -1.0, -1.0)

_REC601 = (0.299, 0.587, 0.114)
# The 4-neighbour Laplacian, as scipy.ndimage.laplace and OpenCV's Laplacian(ksize=1).
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
# Immerkaer's mask: the difference of two Laplacians, blind to the image's own (locally linear) structure.
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def luminance(images: tf.Tensor) -> tf.Tensor:
    """Rec. 601 luminance ``0.299 R + 0.587 G + 0.114 B`` of ``[N, H, W, 3]`` images: ``[N, H, W, 1]``."""
    images = tf.cast(images, tf.float32)
    return tf.reduce_sum(images * tf.constant(_REC601, tf.float32), axis=-1, keepdims=True)


def _filter(grey: tf.Tensor, kernel) -> tf.Tensor:
    """``grey`` [N, H, W, 1] convolved with a 3x3 ``kernel``, 'VALID': [N, H-2, W-2, 1]."""
    k = tf.reshape(tf.constant(kernel, tf.float32), (3, 3, 1, 1))
    return tf.nn.conv2d(grey, k, strides=1, padding="VALID")


def _blockiness(grey: tf.Tensor) -> tf.Tensor:
    """JPEG 8x8 blocking of ``grey`` [N, H, W, 1]: [N].

    The absolute luminance steps between horizontal neighbours, ``|Y[i, j+1] - Y[i, j]|``, are split
    into those across a block boundary (``j + 1`` a multiple of :data:`BLOCK`, the grid starting at the
    top-left pixel as a JPEG's does) and all others, and the mean step across boundaries is divided by
    the mean step elsewhere; likewise for vertical neighbours; the measure is the mean of the two ratios.
    A photo without blocking gives about 1 (a linear gradient exactly 1); heavy JPEG compression, well
    above 1 (the blocks' edges are steps, their insides smoothed). Any size works: a partial last block
    simply has no boundary after it. A direction's ratio is 1 where it has no boundary (under 9 px) or no
    step at all (a flat picture). A simple form of the boundary/inside difference ratio of Wang, Bovik &
    Evans (2000), "Blind measurement of blocking artifacts in images", ICIP.
    """
    y = grey[..., 0]

    def ratio(steps: tf.Tensor, axis: int) -> tf.Tensor:
        """steps [N, A, B], the boundaries along ``axis`` (1 or 2) -> [N]."""
        n = tf.shape(steps)[axis]
        on_grid = tf.cast(tf.equal((tf.range(n) + 1) % BLOCK, 0), tf.float32)
        mask = on_grid[None, :, None] if axis == 1 else on_grid[None, None, :]
        other = tf.cast(tf.shape(steps)[3 - axis], tf.float32)  # the length of each boundary line
        on_count = other * tf.reduce_sum(on_grid)
        off_count = other * tf.cast(n, tf.float32) - on_count
        on_mean = tf.math.divide_no_nan(tf.reduce_sum(steps * mask, axis=[1, 2]), on_count)
        off_mean = tf.math.divide_no_nan(tf.reduce_sum(steps * (1.0 - mask), axis=[1, 2]), off_count)
        eps = 1e-6
        value = (on_mean + eps) / (off_mean + eps)
        return tf.where(on_count > 0, value, tf.ones_like(value))

    columns = ratio(tf.abs(y[:, :, 1:] - y[:, :, :-1]), axis=2)  # step j is between columns j and j+1
    rows = ratio(tf.abs(y[:, 1:, :] - y[:, :-1, :]), axis=1)
    return 0.5 * (columns + rows)


def _colourfulness(images: tf.Tensor) -> tf.Tensor:
    """Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images", SPIE 5007: with
    ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over the pixels, ``sqrt(std_rg^2 + std_yb^2) + 0.3
    sqrt(mean_rg^2 + mean_yb^2)``, divided by 255 (a grey picture 0; their "highly colourful" photos,
    about 109 on the 0-255 scale, reach about 0.43). [N, H, W, 3] -> [N]."""
    r, g, b = tf.unstack(images, axis=-1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    # + 1e-12 under the roots: a grey photo's 0 would give an infinite gradient (saliency maps of NaN)
    spread = tf.sqrt(tf.math.reduce_variance(rg, axis=[1, 2]) + tf.math.reduce_variance(yb, axis=[1, 2]) + 1e-12)
    centre = tf.sqrt(tf.square(tf.reduce_mean(rg, axis=[1, 2])) + tf.square(tf.reduce_mean(yb, axis=[1, 2]))
                     + 1e-12)
    return (spread + 0.3 * centre) / 255.0


def technical_measures(images, original_sizes=None) -> tf.Tensor:
    """The :data:`TECHNICAL_MEASURES` of each image: float32 ``[N, 9]``, columns in that order.

    Args:
        images: float32 ``[N, H, W, 3]`` RGB in 0-255 (any height and width of at least 3 px: the
            decoded photo, or the photo resized for a model).
        original_sizes: ``[N, 2]`` (height, width) of each photo before any resize, for ``megapixels``;
            None: the tensor's own height and width.

    The measures (``Y`` the Rec. 601 luminance in 0-255, see :func:`luminance`):

    - ``sharpness``: ``log1p`` of the variance of ``Y`` convolved with the 3x3 Laplacian
      ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]`` over the 'VALID' positions (no padded border): the
      variance-of-Laplacian blur measure of Pech-Pacheco et al. (2000), "Diatom autofocusing in
      brightfield microscopy: a comparative study", ICPR. ``expm1`` gives the variance back; log1p
      because it spans 0 (flat) to tens of thousands (fine texture).
    - ``brightness``: ``mean(Y) / 255``.
    - ``shadows_clipped`` / ``highlights_clipped``: the share of pixels with ``Y <=``
      :data:`SHADOW_LEVEL` / ``Y >=`` :data:`HIGHLIGHT_LEVEL`.
    - ``contrast``: RMS contrast, ``std(Y) / 255`` (Peli 1990, "Contrast in complex images", JOSA A).
    - ``noise``: Immerkaer (1996), "Fast noise variance estimation", CVIU 64(2): ``sigma = sqrt(pi/2) /
      (6 (W-2)(H-2)) sum |Y * M|`` with ``M = [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` ('VALID'), in grey
      levels (0-255). The mask cancels locally linear structure, not edges and texture, so a textured
      photo reads somewhat above its true noise.
    - ``blockiness``: JPEG 8x8 blocking, 1 for none (see ``_blockiness``).
    - ``colourfulness``: Hasler & Suesstrunk (2003) / 255 (see ``_colourfulness``).
    - ``megapixels``: ``height * width / 1e6`` from ``original_sizes``, else from the tensor.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    grey = luminance(images)
    axes = [1, 2, 3]
    sharpness = tf.math.log1p(tf.math.reduce_variance(_filter(grey, _LAPLACIAN), axis=axes))
    brightness = tf.reduce_mean(grey, axis=axes) / 255.0
    shadows = tf.reduce_mean(tf.cast(grey <= SHADOW_LEVEL, tf.float32), axis=axes)
    highlights = tf.reduce_mean(tf.cast(grey >= HIGHLIGHT_LEVEL, tf.float32), axis=axes)
    contrast = tf.sqrt(tf.math.reduce_variance(grey, axis=axes) + 1e-12) / 255.0  # no infinite gradient at 0
    # The mean over the (H-2)(W-2) 'VALID' positions is the sum / ((W-2)(H-2)) of Immerkaer's formula.
    noise = math.sqrt(math.pi / 2.0) / 6.0 * tf.reduce_mean(tf.abs(_filter(grey, _IMMERKAER)), axis=axes)
    if original_sizes is None:
        shape = tf.shape(images)
        pixels = tf.cast(shape[1], tf.float32) * tf.cast(shape[2], tf.float32)
        megapixels = tf.fill([shape[0]], pixels / 1e6)
    else:
        sizes = tf.cast(tf.convert_to_tensor(original_sizes), tf.float32)
        megapixels = sizes[:, 0] * sizes[:, 1] / 1e6
    return tf.stack([sharpness, brightness, shadows, highlights, contrast, noise, _blockiness(grey),
                     _colourfulness(images), megapixels], axis=1)


def composition_measures(images, boxes) -> tf.Tensor:
    """The :data:`COMPOSITION_MEASURES` of each image and its pet's box: float32 ``[N, 3]``.

    Args:
        images: float32 ``[N, H, W, 3]`` RGB in 0-255.
        boxes: float32 ``[N, 4]`` ``(y0, x0, y1, x1)`` as fractions of the frame's height and width (the
            order of ``tf.image.crop_and_resize``; 0 is the frame's top/left edge and 1 its bottom/right
            edge, so a box of pixel rows ``top..bottom`` exclusive is ``top / H .. bottom / H``:
            :func:`normalised_box` converts the locator's boxes). Clipped to the frame. A row of
            :data:`NO_SUBJECT` (-1s; any negative or NaN coordinate counts) means "no pet found".

    The measures:

    - ``subject_share``: ``(y1 - y0) (x1 - x0)``, the share of the frame's area inside the box.
    - ``subject_offset``: the distance from the box's centre to the frame's centre in frame fractions,
      over the centre-to-corner distance ``sqrt(0.5)``: 0 centred, 1 on a corner (a wide frame counts
      its width and height alike, as the rule of thirds does).
    - ``subject_contrast``: the Euclidean distance between the mean RGB of the pixels whose centres lie
      inside the box and of the others, / 255 (0 to sqrt(3): red on blue is sqrt(2)); 0 when either side
      has no pixel (a box filling the frame).

    No pet found: all three are 0. ``subject_share`` 0 marks it (a found box always has some area), and
    0 offset and contrast keep those columns neutral rather than claim a centred or a blending pet.
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    boxes = tf.cast(tf.convert_to_tensor(boxes), tf.float32)
    missing = tf.reduce_any(boxes < 0, axis=1) | tf.logical_not(tf.reduce_all(tf.math.is_finite(boxes), axis=1))
    boxes = tf.where(missing[:, None], tf.zeros_like(boxes), tf.clip_by_value(boxes, 0.0, 1.0))
    y0, x0, y1, x1 = tf.unstack(boxes, axis=1)
    share = tf.maximum(y1 - y0, 0.0) * tf.maximum(x1 - x0, 0.0)
    offset = tf.sqrt(tf.square(0.5 * (y0 + y1) - 0.5) + tf.square(0.5 * (x0 + x1) - 0.5)) / math.sqrt(0.5)

    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    rows = (tf.range(height) + 0.5) / height  # pixel centres in frame fractions
    cols = (tf.range(width) + 0.5) / width
    in_rows = tf.cast((rows[None, :] >= y0[:, None]) & (rows[None, :] < y1[:, None]), tf.float32)  # [N, H]
    in_cols = tf.cast((cols[None, :] >= x0[:, None]) & (cols[None, :] < x1[:, None]), tf.float32)  # [N, W]
    inside = in_rows[:, :, None] * in_cols[:, None, :]  # [N, H, W]
    n_in = tf.reduce_sum(inside, axis=[1, 2])
    n_out = height * width - n_in
    mean_in = tf.math.divide_no_nan(tf.einsum("nhw,nhwc->nc", inside, images), n_in[:, None])
    mean_out = tf.math.divide_no_nan(tf.einsum("nhw,nhwc->nc", 1.0 - inside, images), n_out[:, None])
    # + 1e-12 under the root: equal means (a black photo without a pet) would give an infinite gradient
    contrast = tf.sqrt(tf.reduce_sum(tf.square(mean_in - mean_out), axis=1) + 1e-12) / 255.0
    contrast = tf.where((n_in > 0) & (n_out > 0), contrast, tf.zeros_like(contrast))

    zero = tf.zeros_like(share)
    return tf.stack([tf.where(missing, zero, share), tf.where(missing, zero, offset),
                     tf.where(missing, zero, contrast)], axis=1)


def normalised_box(subject: Subject | None, height: int, width: int) -> tuple[float, float, float, float]:
    """The locator's box (:class:`pawtf.quality.subject.Subject`: ``(left, top, right, bottom)`` in the
    pixels of the photo it was given, right and bottom exclusive) as :func:`composition_measures` takes
    it: ``(top / height, left / width, bottom / height, right / width)``; :data:`NO_SUBJECT` when no cat
    or dog was found (or ``subject`` is None). ``height`` and ``width`` are those of the photo given to
    ``locate``; the fractions then hold for any resize of it.

    >>> from pawtf.quality.subject import Subject
    >>> normalised_box(Subject(True, 0.9, 0.0, box=(10, 20, 50, 60)), height=80, width=100)
    (0.25, 0.1, 0.75, 0.5)
    >>> normalised_box(Subject(False, 0.01, 0.02), 80, 100)
    (-1.0, -1.0, -1.0, -1.0)
    """
    if subject is None or not subject.found or subject.box is None:
        return NO_SUBJECT
    left, top, right, bottom = subject.box
    return (top / height, left / width, bottom / height, right / width)


@keras.saving.register_keras_serializable(package="pawtf")
class TechnicalMeasures(keras.layers.Layer):
    """:func:`technical_measures` as a Keras layer: images ``[N, H, W, 3]`` in 0-255 -> ``[N, 9]``
    (optionally ``original_sizes`` ``[N, 2]`` as a second argument, for ``megapixels``). No weights; it
    computes in float32 whatever the global precision policy.

    >>> import numpy as np
    >>> TechnicalMeasures()(np.zeros((2, 16, 16, 3), np.float32)).shape
    TensorShape([2, 9])
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, images, original_sizes=None):
        return technical_measures(images, original_sizes)

    def compute_output_shape(self, images_shape, original_sizes_shape=None):
        return (images_shape[0], len(TECHNICAL_MEASURES))

    def get_config(self):
        return super().get_config()  # no settings of its own: the measures are fixed
