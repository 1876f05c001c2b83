"""Photo quality: technical and composition measures of a pet photo, apart from any popularity model.

- :mod:`pawtf.quality.subject`: where the pet is (a box from the class-activation map of an ImageNet
  classifier's cat and dog classes), or that no cat or dog is found. Crop advice (`pawtf.crop`) keeps
  every crop around that box.

>>> from pawtf.quality import FOUND_THRESHOLD, locate
>>> FOUND_THRESHOLD
0.1
"""

from pawtf.quality.subject import FOUND_THRESHOLD, Subject, locate, locate_many

__all__ = ["FOUND_THRESHOLD", "Subject", "locate", "locate_many"]
