import numpy as np
import pytest

from pawtf.data.augment import ViewAugment, gaussian_kernel
from pawtf.data.views import VIEWS, view_code


def images(n=4, size=40):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_views_apply_per_sample_and_keep_shape():
    x = images()
    views = np.array([0, VIEWS["flip"], VIEWS["crop_blur"], view_code(["flip", "crop_blur"])], "int32")
    out = np.asarray(ViewAugment()([x, views], training=True))
    assert out.shape == x.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_allclose(out[1], x[1, :, ::-1])
    assert not np.allclose(out[2], x[2])
    np.testing.assert_allclose(out[3], out[3])  # finite
    # flip then crop+blur equals crop+blur of the flipped image
    both = np.asarray(ViewAugment()([x[3:4, :, ::-1], np.array([VIEWS["crop_blur"]], "int32")],
                                    training=True))
    np.testing.assert_allclose(out[3], both[0], atol=1e-3)


def test_crop_zooms_into_the_centre():
    x = np.zeros((1, 100, 100, 3), "float32")
    x[:, :5] = 255.0  # a band at the top edge, outside the central 90%
    out = np.asarray(ViewAugment()([x, np.array([VIEWS["crop_blur"]], "int32")], training=True))
    assert out[0, :3].mean() < 30 and out[0, 50].mean() == pytest.approx(0, abs=1e-3)


def test_inactive_at_inference():
    x = images()
    views = np.full(4, 3, "int32")
    np.testing.assert_array_equal(np.asarray(ViewAugment()([x, views], training=False)), x)
    np.testing.assert_array_equal(np.asarray(ViewAugment()([x, views])), x)


def test_gaussian_kernel_is_normalised_and_peaked():
    k = gaussian_kernel(0.3)
    assert sum(k) == pytest.approx(1.0) and len(k) == 3 and k[1] > 0.98


def test_unknown_view_name():
    with pytest.raises(ValueError, match="unknown view"):
        view_code(["rotate"])


def test_the_centre_crop_is_crop_and_resize_and_compiles_with_xla():
    """The crop as gathers gives tf.image.crop_and_resize's values (XLA has no CropAndResize kernel), so
    the training model compiles with --xla on."""
    import numpy as np
    import tensorflow as tf

    from pawtf.data.augment import ViewAugment

    layer = ViewAugment()
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (3, 50, 64, 3)).astype("float32"))
    box = tf.tile([[0.05, 0.05, 0.95, 0.95]], [3, 1])
    expected = tf.image.crop_and_resize(x, box, tf.range(3), [50, 64])
    np.testing.assert_allclose(layer._centre_crop(x).numpy(), expected.numpy(), atol=5e-3)
    views = tf.constant([0, 2, 3])
    compiled = tf.function(lambda a, v: layer([a, v], training=True), jit_compile=True,
                           autograph=False)(x, views)
    np.testing.assert_allclose(compiled.numpy(), layer([x, views], training=True).numpy(), atol=1e-3)
