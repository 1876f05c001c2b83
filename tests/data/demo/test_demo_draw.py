"""Tests of drawing demo scenes (pawtf.data.demo.draw): masks, panel lines and blur as written."""

import numpy as np
from PIL import Image

from pawtf.data.demo.draw import render
from pawtf.data.demo.scene import sample_scene
from pawtf.data.schema import ID_COLUMN


def test_masks_follow_the_main_face(stats_set):
    out, _, table, attrs = stats_set
    checked = 0
    for row in table:
        a = attrs[row[ID_COLUMN]]
        if any(int(row[k]) for k in ("Collage", "Occlusion", "Human", "Info")):
            continue
        x, y = float(a["head_x"]), float(a["head_y"])
        if not (1 <= x < 31 and 1 <= y < 31):
            continue
        m = np.asarray(Image.open(out / "masks" / f"{row[ID_COLUMN]}.png"))
        assert m[int(y), int(x)] == 255
        checked += 1
    assert checked > 100


def test_collage_images_show_panel_lines(stats_set):
    out, _, table, attrs = stats_set
    seen = 0
    for row in table:
        if row["Collage"] != "1" or "1" in (row["Blur"], row["Human"], row["Info"]):
            continue
        img = np.asarray(Image.open(out / "train" / f"{row[ID_COLUMN]}.jpg").convert("L"), float)
        mid = img.shape[0] // 2
        lines = [img[:, c] for c in (mid - 1, mid)] + [img[r, :] for r in (mid - 1, mid)]
        # a straight white or black panel line runs through the middle, across the whole image
        assert any(line.std() < 20 and (line.mean() > 200 or line.mean() < 50) for line in lines)
        seen += 1
    assert seen >= 5


def test_blur_flag_is_visible(stats_set):
    out, _, table, _ = stats_set

    def sharpness(row):
        img = np.asarray(Image.open(out / "train" / f"{row[ID_COLUMN]}.jpg").convert("L"), float)
        lap = img[1:-1, 1:-1] * 4 - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
        return lap.var()

    blurred = [sharpness(r) for r in table if r["Blur"] == "1" and r["Info"] == "0"]
    sharp = [sharpness(r) for r in table if r["Blur"] == "0" and r["Info"] == "0"]
    assert np.median(blurred) < 0.5 * np.median(sharp)


def test_render_sizes_and_mask_values():
    for i in range(20):
        image, mask = render(sample_scene(np.random.default_rng(i), size=40))
        assert image.mode == "RGB" and mask.mode == "L" and image.size == mask.size == (40, 40)
        values = np.unique(np.asarray(mask))
        assert set(values) <= {0, 255} and 255 in values
