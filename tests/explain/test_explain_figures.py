"""Figures: the photo at its own aspect ratio with the maps stretched back over it, a colour legend, and
captions that say when a method did no better than a random map."""

import numpy as np
import pytest
from PIL import Image

from pawtf.explain.base import resize_maps
from pawtf.explain.figures import FLAG_COLOUR, LEGEND, draw_overlay, fit_to, overlay_figure, score_grid


@pytest.mark.parametrize("source,shape", [((8, 8), (20, 50)), ((30, 30), (7, 11)), ((5, 9), (5, 9))])
def test_fit_to_is_tensorflows_bilinear_resize(source, shape):
    array = np.random.default_rng(0).random(source).astype(np.float32)
    assert np.allclose(fit_to(array, shape), resize_maps(array[None], shape)[0], atol=1e-5)
    with pytest.raises(ValueError, match="2-D"):
        fit_to(np.zeros((2, 2, 2)), (4, 4))


def test_overlay_keeps_the_photos_aspect_ratio_and_has_a_legend():
    photo = np.full((40, 100, 3), 128, np.uint8)  # a wide photo; the maps are the model's square
    maps = {"gradcam++": np.eye(8, dtype=np.float32), "vanilla": np.ones((8, 8), np.float32)}
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True
    fig = draw_overlay(photo, maps, 41.27, "rex", mask=mask,
                       notes={"gradcam++": "score when shown first: 45.0 (random map 38.1)"},
                       titles={"gradcam++": "Grad-CAM++"}, flagged=["vanilla"], footer="what it means")
    photo_ax, cam_ax, grad_ax, legend_ax = fig.axes
    assert photo_ax.images[0].get_array().shape == (40, 100, 3)
    for ax in (cam_ax, grad_ax):  # photo, then the map stretched to the photo
        assert [im.get_array().shape[:2] for im in ax.images] == [(40, 100), (40, 100)]
    assert np.isclose(cam_ax.images[1].get_array()[0, 0], 1.0) and cam_ax.images[1].get_array()[-1, 0] < 0.2
    assert cam_ax.get_title() == "Grad-CAM++\nscore when shown first: 45.0 (random map 38.1)"
    assert grad_ax.title.get_color() == FLAG_COLOUR and cam_ax.title.get_color() != FLAG_COLOUR
    assert [t.get_text() for t in legend_ax.get_yticklabels()] == list(LEGEND)
    assert fig.get_suptitle() == "rex  predicted score 41.3"
    assert fig.get_supxlabel() == "what it means"
    # A wide photo makes a wider figure than a tall one with the same maps.
    tall = draw_overlay(np.zeros((100, 40, 3)), maps, 1.0)
    assert fig.get_size_inches()[0] / fig.get_size_inches()[1] > \
        tall.get_size_inches()[0] / tall.get_size_inches()[1]


def test_saved_figures(tmp_path):
    photo = np.random.default_rng(0).integers(0, 255, (30, 60, 3)).astype(np.uint8)
    saliency = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    path = overlay_figure(tmp_path / "a.png", photo, {"vanilla": saliency}, 50.0, "a",
                          notes={"vanilla": "x"}, flagged=["vanilla"], footer="y")
    width, height = Image.open(path).size
    assert path.exists() and width > height
    rows = {"highest": [(photo, saliency, 70.0, "a"), (photo[:, :30], saliency, 60.0, "b")],
            "lowest": [(photo, saliency, 10.0, "c")]}
    assert score_grid(tmp_path / "g.png", "Grad-CAM++", rows).stat().st_size > 1000
