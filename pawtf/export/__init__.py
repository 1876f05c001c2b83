"""Export a run as a versioned SavedModel for TF Serving.

Two modules, one concept each: :mod:`pawtf.export.decode` (the in-graph image decoder the SavedModel
serves encoded bytes with, matching the training reader) and :mod:`pawtf.export.publish` (the
signatures, the check against the Keras model, versioned atomic folders and ``pawtf.json``).

Example:

>>> from pawtf.runs import load_run
>>> from pawtf.export import export
>>> export(load_run("runs/demo"), "saved_models/pawpularity")  # doctest: +SKIP
PosixPath('saved_models/pawpularity/1')
"""

from pawtf.export.decode import decode_batch, decode_image
from pawtf.export.publish import (CHECK_TOLERANCE, IMAGE, IMAGE_BYTES, INFO_FILE, METADATA, SERVING_DECODED,
                                  SERVING_DEFAULT, WARMUP_BATCH_SIZES, WARMUP_FILE, ExportError, default_name,
                                  export, prediction_log, read_info, versions, warmup_requests)

__all__ = ["CHECK_TOLERANCE", "ExportError", "IMAGE", "IMAGE_BYTES", "INFO_FILE", "METADATA", "SERVING_DECODED",
           "SERVING_DEFAULT", "WARMUP_BATCH_SIZES", "WARMUP_FILE", "decode_batch", "decode_image", "default_name",
           "export", "prediction_log", "read_info", "versions", "warmup_requests"]
