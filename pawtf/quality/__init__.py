"""Photo quality: technical and composition measures of a pet photo, apart from any popularity model.

- :mod:`pawtf.quality.subject`: where the pet is (a box from the class-activation map of an ImageNet
  classifier's cat and dog classes), or that no cat or dog is found. Crop advice (`pawtf.crop`) keeps
  every crop around that box.
- :mod:`pawtf.quality.technical`: technical measures (sharpness, brightness, clipping, contrast, noise,
  JPEG blockiness, colourfulness, megapixels) and composition measures from the pet's box, as TensorFlow
  ops, with the Keras layer ``TechnicalMeasures``. Imported on its own (it loads TensorFlow), not here.

>>> from pawtf.quality import FOUND_THRESHOLD, locate
>>> FOUND_THRESHOLD
0.1
"""

from pawtf.quality.subject import FOUND_THRESHOLD, Subject, locate, locate_many

__all__ = ["FOUND_THRESHOLD", "Subject", "locate", "locate_many"]
