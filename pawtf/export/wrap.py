"""An exported SavedModel back as a Keras model, for the methods that need one (saliency maps).

:func:`serving_as_keras` wraps the export's ``serving_decoded`` signature (decoded RGB images, 0-255, and the
12 flags) in a functional Keras model whose inputs are named ``image`` (and ``metadata``) and whose outputs
are named and shaped as the run's model had them, so `pawtf.explain`'s gradient and perturbation methods
(``vanilla``, ``smoothgrad``, ``rise``) run on a SavedModel as on a run: TensorFlow differentiates through
the loaded graph. Class-activation maps (Grad-CAM) need the backbone's feature map, which the signature
does not expose: they need the run folder.

>>> model = serving_as_keras("saved_models/demo/1", image_size=224, uses_metadata=True)  # doctest: +SKIP
>>> model.output_names                                                                  # doctest: +SKIP
['pawpularity']
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["serving_as_keras"]


def serving_as_keras(version_dir: str | Path, image_size: int, uses_metadata: bool):
    """A Keras model over the export's ``serving_decoded`` signature (see the module doc).

    Args:
        version_dir: a SavedModel version folder written by :func:`pawtf.export.export`.
        image_size: the side of the square images the model is given (the run's input size).
        uses_metadata: whether the signature takes the 12 flags.
    """
    import keras
    import tensorflow as tf

    from pawtf import tasks
    from pawtf.data.schema import FLAGS
    from pawtf.export.publish import IMAGE, METADATA, SERVING_DECODED, read_info

    loaded = tf.saved_model.load(str(version_dir))
    fn = loaded.signatures[SERVING_DECODED]
    task = tasks.get(read_info(version_dir).get("task", "score"))
    keys = {o.name: o.signature_key for o in task.outputs}
    specs = fn.structured_outputs

    class Serving(keras.layers.Layer):
        """The signature as a layer: its outputs for the run's output names (the loaded object is kept
        alive by the layer)."""

        def __init__(self, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self._loaded, self._fn = loaded, fn

        def call(self, image, metadata=None):
            feed = {IMAGE: image} if metadata is None else {IMAGE: image, METADATA: metadata}
            out = self._fn(**feed)
            return [out[keys[name]] for name in keys]

        def compute_output_spec(self, image, metadata=None):
            return [keras.KerasTensor((image.shape[0], *specs[keys[name]].shape[1:]), dtype="float32")
                    for name in keys]

    image = keras.Input((image_size, image_size, 3), name=IMAGE)
    inputs = [image] + ([keras.Input((len(FLAGS),), name=METADATA)] if uses_metadata else [])
    outputs = Serving(name="serving_decoded")(*inputs)
    named = [keras.layers.Identity(name=name)(t) for name, t in zip(keys, outputs)]
    return keras.Model(inputs, named, name=Path(version_dir).parent.name or "savedmodel")
