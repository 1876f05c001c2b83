"""Where is the pet? A box around the cat(s) or dog(s) of a photo, or "no cat or dog found".

The locator is EfficientNet-Lite0 with its offline ImageNet classifier
(:mod:`pawtf.models.efficientnet_lite`), built once per process. The photo is squashed to
:data:`INPUT_SIZE` square (as the popularity models see photos) and a forward pass gives the head's
softmax and the last feature map:

- **found**: the softmax mass on the cat and dog classes (:data:`CAT_CLASSES`, :data:`DOG_CLASSES`) is at
  least :data:`FOUND_THRESHOLD`. Measured on the 600 real photos of ``shared/data/pet-photos``: 598 reach
  it (the misses: a dog seen through a fence inside a star-shaped vignette, 0.05, and a kitten held by a
  woman in red, 0.095; the next lowest is 0.12). Generated noise, blurred noise, flat colours, stripes, a
  checkerboard and synthetic landscapes (30 pictures) stay at or below 0.08; a uniform softmax would put
  0.12 on these 123 classes. The cartoon pets of ``pawtf demo-data`` are mostly not found (0 of 120 at
  the default seed, 5 of 400 at another, at most 0.26; where found, the box is on the cartoon's face):
  crop advice then says so rather than guess.
- **box**: the class-activation map (CAM, Zhou et al. 2016) of the last feature map
  (``top_activation``, 7x7 at 224 px): each location's 1280 features times the ``predictions`` kernel
  columns of the cat and dog classes, weighted by each class's softmax probability (so the map is the
  CAM of what the head sees, cat or dog, and a photo with both gets both). It is upsampled bilinearly to
  the photo with each value placed where its receptive field is centred (:data:`CAM_SHIFT`: half a cell
  up and left of the cell's centre; without it the boxes sat 6% of the photo right and 5% down) and the
  box holds every pixel above :data:`CAM_THRESHOLD` of the peak (20%, as Zhou et al.).
- **erasing**: CAM marks the most telling parts (the head) strongest and can miss the rest of the body,
  so the box grown by :data:`ERASE_MARGIN` is blanked (the photo's mean colour) and the photo located
  again; if a cat or dog is still found, the box becomes the union of both boxes (adversarial erasing,
  Wei et al. 2017, one round). On the 600 photos this widened 26 boxes (e.g. a dog whose head alone was
  boxed, its body and tail not), and afterwards blanking every box + 10% leaves no cat or dog for the
  classifier in any of the 598 (before: 27 left one). A second round changed nothing.

Measured on the 598 photos found: the box covers 32-100% of the photo (median 73%); a crop to the box
+ 20% is still a cat or dog for the classifier in all of them, of the same species in 98.3%. 41 ms a
photo in batches of 32, 50 ms one at a time (2 CPU cores), two forward passes each. Averaging with the
mirrored photo's map was tried: the same figures at twice the time.

Domestic cats are ImageNet classes 281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat); the wild
cats 286-293 (cougar, lynx, leopard, snow leopard, jaguar, lion, tiger, cheetah) are left out: on the 300
real cat photos they hold 2.4% of the mass on average and adding them finds no extra photo, while they
would call a zoo photo a pet. Dogs are 151-268 (the dog breeds; wolves, foxes and hyenas are left out,
likewise: 1.2% of the mass on dog photos, no extra photo found).

Example:

>>> import numpy as np
>>> subject = locate(np.full((120, 160, 3), 128, np.uint8))   # a flat grey picture
>>> subject.found, subject.box
(False, None)
>>> subject.note
'no cat or dog found (cat+dog probability 0.04, needs 0.10)'
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["CAM_SHIFT", "CAM_THRESHOLD", "CAT_CLASSES", "DOG_CLASSES", "ERASE_MARGIN", "FOUND_THRESHOLD",
           "INPUT_SIZE", "Box", "Subject", "box_from_map", "class_activation_map", "grown_box", "locate",
           "locate_many"]

logger = logging.getLogger(__name__)

#: ImageNet class indices of domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian cat).
CAT_CLASSES = tuple(range(281, 286))
#: ImageNet class indices of the dog breeds.
DOG_CLASSES = tuple(range(151, 269))
#: Least softmax mass on the cat and dog classes for "found" (measured: see the module doc).
FOUND_THRESHOLD = 0.10
#: Side of the square the photo is squashed to for the locator.
INPUT_SIZE = 224
#: Fraction of the CAM's peak that the box's regions must exceed.
CAM_THRESHOLD = 0.2
#: The erasing pass blanks the box grown by this fraction of its size on each side.
ERASE_MARGIN = 0.1
#: Where the locator's feature-map values sit, in cells from the cells' centres. Lite0's five stride-2
#: convolutions pad (k - 1) // 2 zeros on every side (`pawtf.models.efficientnet_lite`), so output j is
#: centred on input pixel 2j: centres move by -0.5 px per stride-2 layer, -(1 + 2 + 4 + 8 + 16) / 2 =
#: -15.5 input px in all, about half a 32-px cell up and left.
CAM_SHIFT = -15.5 / 32

Box = tuple[int, int, int, int]  # left, top, right, bottom (right/bottom exclusive), in photo pixels
_PETS = np.array(DOG_CLASSES + CAT_CLASSES)


@dataclasses.dataclass(frozen=True)
class Subject:
    """What the locator found in one photo.

    ``found``: whether a cat or dog is there (``pet_probability >= FOUND_THRESHOLD``); ``box`` the pet's
    box in photo pixels and ``peak`` the CAM's strongest point (x, y) in photo pixels (both None when not
    found); ``species`` ``"cat"`` or ``"dog"`` (the group with more probability); ``cat_probability`` and
    ``dog_probability`` the softmax mass of each group; ``heatmap`` the CAM [7, 7] in [0, 1] (None when
    not found), for composition measures.
    """

    found: bool
    cat_probability: float
    dog_probability: float
    box: Box | None = None
    peak: tuple[float, float] | None = None
    heatmap: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def pet_probability(self) -> float:
        return self.cat_probability + self.dog_probability

    @property
    def species(self) -> str:
        return "cat" if self.cat_probability > self.dog_probability else "dog"

    @property
    def note(self) -> str:
        """One line for the user: the box, or that no cat or dog was found."""
        if not self.found:
            return (f"no cat or dog found (cat+dog probability {self.pet_probability:.2f}, needs "
                    f"{FOUND_THRESHOLD:.2f})")
        left, top, right, bottom = self.box
        return (f"{self.species} found (probability {self.pet_probability:.2f}): box {left},{top} "
                f"{right - left}x{bottom - top}")


@functools.lru_cache(maxsize=1)
def _locator():
    """(predict, kernel): a traced function 0-255 images -> (feature maps, probabilities) of Lite0 with its
    ImageNet head (the network served models locate pets with, `pawtf.quality.composition`), and the head's
    kernel [1280, 1000]; built once per process."""
    import tensorflow as tf

    from pawtf.quality.composition import locator_network

    logger.debug("building the pet locator (EfficientNet-Lite0, ImageNet head)")
    network = locator_network()
    predict = tf.function(lambda x: network(x, training=False), reduce_retracing=True,
                          input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 3], tf.float32)])
    kernel = np.asarray(network.get_layer("predictions").get_weights()[0], np.float64)
    return predict, kernel


def class_activation_map(features: np.ndarray, probabilities: np.ndarray, kernel: np.ndarray,
                         classes: Sequence[int] = tuple(_PETS)) -> np.ndarray:
    """The CAM of ``classes``, each weighted by its probability: ``features @ kernel[:, classes] @ w``.

    Args:
        features: the last feature map [h, w, C] of one image.
        probabilities: the head's softmax [K] for that image.
        kernel: the head's kernel [C, K].
        classes: the class indices to map.

    Returns:
        The map [h, w], negative parts set to 0 (not normalised).

    >>> f = np.zeros((2, 2, 3)); f[0, 1] = (1, 0, 0)
    >>> class_activation_map(f, np.array([0.5, 0.5]), np.eye(3)[:, :2], classes=(0,))
    array([[0., 1.],
           [0., 0.]])
    """
    classes = np.asarray(classes)
    weights = probabilities[classes] / max(float(probabilities[classes].sum()), 1e-12)
    return np.maximum(np.asarray(features, np.float64) @ (kernel[:, classes] @ weights), 0.0)


def grown_box(box: Box, margin: float, width: int, height: int) -> Box:
    """``box`` grown by ``margin`` of its width (height) on the left and right (top and bottom), clipped
    to the ``width`` x ``height`` photo.

    >>> grown_box((100, 100, 200, 150), 0.1, 1000, 1000), grown_box((0, 0, 10, 10), 0.5, 12, 12)
    ((90, 95, 210, 155), (0, 0, 12, 12))
    """
    left, top, right, bottom = box
    mw, mh = (right - left) * margin, (bottom - top) * margin
    return (max(0, math.floor(left - mw)), max(0, math.floor(top - mh)),
            min(width, math.ceil(right + mw)), min(height, math.ceil(bottom + mh)))


def box_from_map(cam: np.ndarray, width: int, height: int, *, threshold: float = CAM_THRESHOLD,
                 shift: float = 0.0) -> tuple[Box, tuple[float, float]] | None:
    """The box in photo pixels around every region of a map of the (squashed) photo above ``threshold`` x
    its peak.

    Args:
        cam: a map [h, w] >= 0 of the whole photo (any resolution; it is stretched to the photo).
        width, height: the photo's size in pixels.
        threshold: the box holds every pixel where the upsampled map is at least this fraction of its
            peak (so two pets far apart are both in it).
        shift: where each map value sits, in map cells from its cell's centre (both axes; e.g.
            :data:`CAM_SHIFT` for the locator's feature map).

    Returns:
        (box, peak): the box and the map's peak (x, y), in photo pixels. None for a map without a positive
        value.

    >>> m = np.zeros((7, 7)); m[2:4, 4:6] = 1.0   # cells x 400-600, y 100-200 of a 700 x 350 photo
    >>> box, peak = box_from_map(m, 700, 350)
    >>> box                                       # widened a little by the bilinear spread
    (370, 84, 631, 215)
    """
    cam = np.nan_to_num(np.asarray(cam, np.float64))
    if cam.max() <= 0:
        return None
    # Bilinear upsampling to a grid at most 512 px long (the box is scaled to the photo): grid pixel
    # centre u (0-1 across the photo) reads the map at u * n - 0.5 - shift (edges repeated).
    scale = min(1.0, 512 / max(width, height))
    gw, gh = max(1, round(width * scale)), max(1, round(height * scale))
    rows = (np.arange(gh) + 0.5) / gh * cam.shape[0] - 0.5 - shift
    cols = (np.arange(gw) + 0.5) / gw * cam.shape[1] - 0.5 - shift
    up = ndimage.map_coordinates(cam, np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest")
    ys, xs = np.nonzero(up >= threshold * up.max())
    sx, sy = width / gw, height / gh
    box = (int(np.floor(xs.min() * sx)), int(np.floor(ys.min() * sy)),
           min(width, int(np.ceil((xs.max() + 1) * sx))), min(height, int(np.ceil((ys.max() + 1) * sy))))
    py, px = np.unravel_index(int(np.argmax(up)), up.shape)
    return box, (float((px + 0.5) * sx), float((py + 0.5) * sy))


def _located(photos: Sequence[np.ndarray], batch_size: int) -> list[Subject]:
    """One forward pass per photo (in batches): the softmax and, where found, the CAM's box."""
    from pawtf.data.photos import resize_like_training

    predict, kernel = _locator()
    out = []
    for start in range(0, len(photos), batch_size):
        chunk = photos[start:start + batch_size]
        x = np.stack([resize_like_training(p, INPUT_SIZE) for p in chunk]).astype(np.float32)
        features, probs = (np.asarray(t, np.float64) for t in predict(x))
        for photo, f, p in zip(chunk, features, probs):
            cats, dogs = float(p[list(CAT_CLASSES)].sum()), float(p[list(DOG_CLASSES)].sum())
            if cats + dogs < FOUND_THRESHOLD:
                out.append(Subject(False, cats, dogs))
                continue
            cam = class_activation_map(f, p, kernel)
            height, width = photo.shape[:2]
            located = box_from_map(cam, width, height, shift=CAM_SHIFT)
            if located is None:  # nothing positive: the whole photo is the safe box
                located = (0, 0, width, height), (width / 2, height / 2)
            out.append(Subject(True, cats, dogs, *located, cam / max(cam.max(), 1e-12)))
    return out


def locate_many(photos: Sequence[np.ndarray], *, batch_size: int = 32) -> list[Subject]:
    """:func:`locate` for many photos, in batches.

    Args:
        photos: RGB uint8 arrays [H, W, 3] of any sizes.
        batch_size: photos per model call.

    Returns:
        One :class:`Subject` per photo.

    Raises:
        ImportError: the ImageNet weights are not cached and their package is not installed.
    """
    subjects = _located(photos, batch_size)
    found = [i for i, s in enumerate(subjects) if s.found]
    erased = []
    for i in found:  # blank the box (+ margin) with the photo's mean colour: is a pet left?
        height, width = photos[i].shape[:2]
        left, top, right, bottom = grown_box(subjects[i].box, ERASE_MARGIN, width, height)
        blank = photos[i].copy()
        blank[top:bottom, left:right] = photos[i].reshape(-1, 3).mean(0)
        erased.append(blank)
    for i, rest in zip(found, _located(erased, batch_size)):
        if rest.found:
            a, b = subjects[i].box, rest.box
            union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
            subjects[i] = dataclasses.replace(subjects[i], box=union)
    return subjects


def locate(photo: np.ndarray) -> Subject:
    """Find the cat or dog in an RGB photo: its box, or that there is none (see the module doc).

    Args:
        photo: an RGB uint8 array [H, W, 3].

    Returns:
        The :class:`Subject`; ``box`` and ``peak`` in the photo's pixels.

    Raises:
        ImportError: the ImageNet weights are not cached and their package is not installed.
    """
    return locate_many([photo])[0]
