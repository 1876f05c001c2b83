"""load_rgb / decode_rgb / check_image: conversions to RGB and precise errors."""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from pawtf.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    check_image,
    decode_rgb,
    load_rgb,
    read_bytes,
)


@pytest.fixture
def rgb(data_helpers):
    return data_helpers.random_rgb(30, 40)  # H=30, W=40


@pytest.fixture
def jpeg(tmp_path, rgb):
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def _error(func, *args, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as info:
        func(*args, **kwargs)
    return info.value


# ---------------------------------------------------------------- conversions


def test_rgb_jpeg(jpeg, rgb):
    arr = load_rgb(jpeg)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - rgb).mean() < 3


def test_resize_to_width_height(jpeg):
    assert load_rgb(jpeg, size=(20, 10)).shape == (10, 20, 3)
    assert load_rgb(jpeg, size=(80, 60)).shape == (60, 80, 3)  # upscaling works too


def test_large_jpeg_downscale_uses_draft_and_keeps_content(tmp_path, data_helpers):
    big = data_helpers.random_rgb(800, 1200)
    path = tmp_path / "big.jpg"
    Image.fromarray(big).save(path, quality=90)
    small = load_rgb(path, size=(60, 40))
    assert small.shape == (40, 60, 3)
    expected = np.asarray(Image.fromarray(big).resize((60, 40), Image.Resampling.BOX)).astype(int)
    assert np.abs(small.astype(int) - expected).mean() < 4


def test_greyscale_jpeg(tmp_path, rgb):
    path = tmp_path / "grey.jpg"
    Image.fromarray(rgb).convert("L").save(path)
    assert Image.open(path).mode == "L"
    arr = load_rgb(path)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_png_alpha_composited_over_white(tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[:, :2] = (255, 0, 0, 0)      # fully transparent red -> white
    rgba[:, 2:4] = (0, 0, 0, 128)     # half-transparent black -> mid grey
    rgba[:, 4:] = (0, 0, 255, 255)    # opaque blue stays blue
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    arr = load_rgb(path)
    assert arr.shape == (4, 6, 3) and arr.dtype == np.uint8
    assert (arr[:, :2] == 255).all()
    assert np.abs(arr[:, 2:4].astype(int) - 127).max() <= 1
    assert (arr[:, 4:] == (0, 0, 255)).all()


def test_la_png_over_white(tmp_path):
    la = np.zeros((3, 3, 2), dtype=np.uint8)  # black, fully transparent
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    assert (load_rgb(path) == 255).all()


def test_palette_png(tmp_path, rgb):
    path = tmp_path / "palette.png"
    Image.fromarray(rgb).quantize(16).save(path)
    assert Image.open(path).mode == "P"
    arr = load_rgb(path)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - rgb).mean() < 20


def test_palette_png_with_transparency_over_white(tmp_path):
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    img.putpixel((3, 3), 1)
    path = tmp_path / "ptrans.png"
    img.save(path, transparency=0)
    arr = load_rgb(path)
    assert (arr[0, 0] == 255).all() and tuple(arr[3, 3]) == (0, 255, 0)


def test_cmyk_jpeg(tmp_path, rgb):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    arr = load_rgb(path)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - rgb).mean() < 6


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16) * 1040).reshape(8, 8)  # 0..65520
    path = tmp_path / "g16.png"
    Image.fromarray(ramp).save(path)
    arr = load_rgb(path)
    assert arr.shape == (8, 8, 3) and arr.dtype == np.uint8
    assert arr[0, 0, 0] == 0 and arr[-1, -1, 0] == round(65520 / 257)
    assert np.all(np.diff(arr[..., 0].ravel().astype(int)) >= 0)  # monotonic, not clipped


def _oriented_jpeg(tmp_path, orientation: int):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)  # stored W=40, H=20
    stored[:8, :8] = (255, 0, 0)  # red block at the stored top-left
    img = Image.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = orientation
    path = tmp_path / f"orient{orientation}.jpg"
    img.save(path, exif=exif, quality=95)
    return path


def test_exif_orientation_6_rotates(tmp_path):
    path = _oriented_jpeg(tmp_path, 6)  # "rotate 90 CW to display"
    arr = load_rgb(path)
    assert arr.shape == (40, 20, 3)  # width and height swapped
    # The stored top-left corner is displayed at the top-right.
    assert arr[2, -3, 0] > 200 and arr[2, -3, 1] < 60
    assert arr[2, 2, 0] < 60 and arr[-3, -3, 0] < 60 and arr[-3, 2, 0] < 60


def test_exif_orientation_with_resize_and_draft(tmp_path):
    path = _oriented_jpeg(tmp_path, 6)
    assert load_rgb(path, size=(10, 20)).shape == (20, 10, 3)


def test_exif_orientation_1_untouched(tmp_path):
    arr = load_rgb(_oriented_jpeg(tmp_path, 1))
    assert arr.shape == (20, 40, 3) and arr[2, 2, 0] > 200


def test_decode_rgb_bytes_matches_file(jpeg):
    assert np.array_equal(decode_rgb(jpeg.read_bytes()), load_rgb(jpeg))
    assert decode_rgb(jpeg.read_bytes(), size=(8, 6)).shape == (6, 8, 3)


def test_check_image_ok(jpeg):
    assert check_image(jpeg) is None


# ---------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    err = _error(load_rgb, tmp_path / "nope.jpg")
    assert "nope.jpg" in str(err) and "missing" in err.problem
    assert isinstance(err, ValueError) and err.path.endswith("nope.jpg")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    for func in (load_rgb, check_image):
        err = _error(func, path)
        assert str(err) == f"{path}: empty file (0 bytes)"


def test_directory(tmp_path):
    assert "not a regular file" in str(_error(load_rgb, tmp_path))


def test_random_bytes_named_jpg(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    for func in (load_rgb, check_image):
        err = _error(func, path)
        assert "noise.jpg" in str(err) and "cannot identify image" in err.problem


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("definitely not a photo\n")
    assert "cannot identify image" in _error(load_rgb, path).problem


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_jpeg(tmp_path, data_helpers, keep):
    full = io.BytesIO()
    Image.fromarray(data_helpers.random_rgb(120, 160)).save(full, "JPEG", quality=95)
    data = full.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * keep)])
    for func in (load_rgb, check_image):
        err = _error(func, path)
        assert "cut.jpg" in str(err) and err.problem.startswith("truncated or corrupt: ")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_in_header(tmp_path, jpeg):
    path = tmp_path / "stub.jpg"
    path.write_bytes(jpeg.read_bytes()[:200])
    assert "truncated or corrupt" in _error(load_rgb, path).problem


def test_decompression_bomb_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))  # 10 gigapixels claimed, ~100 bytes
    for func in (load_rgb, check_image):
        err = _error(func, path)
        assert "bomb.png" in str(err) and "decompression bomb" in err.problem


def test_max_pixels_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(8000, 6000))  # 48 Mpx claimed, under PIL's own limit
    err = _error(load_rgb, path, max_pixels=1_000_000)
    assert "8000x6000" in err.problem and "max_pixels=1,000,000" in err.problem
    assert 8000 * 6000 < DEFAULT_MAX_PIXELS


def test_tiny_max_pixels_on_real_image(jpeg):
    err = _error(load_rgb, jpeg, max_pixels=100)
    assert "40x30" in err.problem and "decompression bomb" in err.problem


def test_pil_bomb_warning_becomes_error(jpeg, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 px: PIL warns (not errors)
    filters = list(warnings.filters)
    err = _error(load_rgb, jpeg, max_pixels=10**9)
    assert "decompression bomb" in err.problem
    assert warnings.filters == filters  # global warning filters restored


def test_decode_rgb_errors():
    assert str(_error(decode_rgb, b"", name="upload")) == "upload: empty data (0 bytes)"
    assert "cannot identify image" in str(_error(decode_rgb, b"\x00garbage" * 10))


def test_bad_size_argument(jpeg):
    with pytest.raises(ValueError, match="size"):
        load_rgb(jpeg, size=(0, 10))
    with pytest.raises(ValueError, match="size"):
        load_rgb(jpeg, size="big")


def _corrupt_idat(data: bytes, at: int = 0, n: int = 40) -> bytes:
    """`data` (a PNG) with `n` bytes of its first IDAT payload, from `at`, flipped (CRC left as it was)."""
    start = data.index(b"IDAT") + 4 + at
    bad = bytearray(data)
    for k in range(start, start + n):
        bad[k] ^= 0x5A
    return bytes(bad)


@pytest.mark.parametrize("at", [0, 2, 200])
def test_png_with_a_corrupt_data_chunk_is_refused_not_blacked_out(tmp_path, at):
    """Reading a PNG's EXIF makes PIL decode it; that error once got swallowed and the zero-filled
    buffer came through as a (black, or partly black) photo."""
    noise = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    path = tmp_path / "corrupt.png"
    path.write_bytes(_corrupt_idat(buf.getvalue(), at))
    for func in (load_rgb, check_image):
        err = _error(func, path)
        assert "corrupt.png" in str(err) and err.problem.startswith("truncated or corrupt: "), err
    assert _error(decode_rgb, path.read_bytes(), size=(32, 32)).problem.startswith("truncated or corrupt: ")


def test_broken_exif_costs_the_orientation_not_the_photo(tmp_path, rgb):
    path = tmp_path / "exif.png"
    Image.fromarray(rgb).save(path, exif=b"Exif\0\0not a TIFF header at all")
    assert np.array_equal(load_rgb(path), rgb)
    path = tmp_path / "exif.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=b"Exif\0\0MM\0*\0\0\0\x08\xff\xff")  # 65535 entries, none there
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL's "Corrupt EXIF data" warning is not passed on
        assert load_rgb(path).shape == (30, 40, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pil_exif_transpose(tmp_path, orientation):
    from PIL import ImageOps

    path = _oriented_jpeg(tmp_path, orientation)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(load_rgb(path), want)


def _with_timeout(func, *args, seconds=20):
    """func(*args) in a thread; fails (rather than hangs) when it blocks for `seconds`."""
    outcome = {}

    def target():
        try:
            outcome["value"] = func(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{func.__name__} blocked for {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for func in (load_rgb, check_image, read_bytes):
        with pytest.raises(ImageError) as info:
            _with_timeout(func, fifo)
        assert str(info.value) == f"{fifo}: not a regular file (a named pipe)"


def test_read_bytes(jpeg, tmp_path):
    assert read_bytes(jpeg) == jpeg.read_bytes()
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _error(read_bytes, tmp_path / "empty.jpg").problem == "empty file (0 bytes)"
    assert _error(read_bytes, tmp_path / "nope.jpg").problem == "missing (no such file)"
    assert _error(read_bytes, tmp_path).problem == "not a regular file (a folder)"
    loop = tmp_path / "loop.jpg"
    loop.symlink_to(loop)
    assert _error(read_bytes, loop).problem.startswith("cannot access: ")
