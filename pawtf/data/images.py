"""Safe image reading: any photo file or byte string to a clean RGB ``uint8`` array.

:func:`load_rgb` (files) and :func:`decode_rgb` (bytes) both

* refuse decompression bombs by checking the pixel count in the header before
  decoding (``max_pixels``; PIL's own bomb error/warning is turned into
  :class:`ImageError` too),
* fully decode the image, so truncated files fail here rather than later
  (``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never switched on),
* honour the EXIF orientation tag,
* convert every mode (L, LA, P, PA, RGBA, CMYK, I;16, ...) to RGB, compositing
  any transparency over white, and
* optionally resize to ``size=(width, height)``.

Files are opened only when they are regular files (a named pipe would block forever; a folder is
refused), as :func:`read_bytes` reads them for decoders that take bytes. Every decoding error surfaces
as the file's problem: the orientation is read once the pixels decoded without error (a broken EXIF
block then only costs the orientation).

Every failure is an :class:`ImageError` naming the file and the problem::

    >>> arr = load_rgb("train/0007de18844b0dbbb5e1f607da0606e0.jpg", size=(224, 224))  # doctest: +SKIP
    >>> arr.shape, arr.dtype                                                          # doctest: +SKIP
    ((224, 224, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from pathlib import Path
from struct import error as struct_error
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["BACKGROUND", "DEFAULT_MAX_PIXELS", "ImageError", "check_image", "decode_rgb", "load_rgb", "read_bytes",
           "resize"]

#: Largest accepted width * height, checked from the header before decoding.
DEFAULT_MAX_PIXELS = 50_000_000

#: Fill colour for transparent pixels.
BACKGROUND = (255, 255, 255)

# EXIF orientations that swap width and height (transpose / rotate 90 / 270).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# PIL's names for JPEG files (MPO: a JPEG with further pictures appended, as some cameras write), decoded
# at a reduced scale when much larger than the target, as the export's in-graph decoder does.
_JPEG_FORMATS = ("JPEG", "MPO")
# PIL's warning about an EXIF block it cannot parse (it then reads what it can; no pixel is affected).
_CORRUPT_EXIF = "Corrupt EXIF data"
# Opening a named pipe for reading blocks until a writer comes, unless non-blocking (POSIX only).
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)

# ``warnings.catch_warnings`` is process-global; serialise our use of it so that
# concurrent loads (folder checks use threads) cannot corrupt the filter list.
_WARNINGS_LOCK = threading.Lock()


class ImageError(ValueError):
    """An image that cannot be used; ``.path`` and ``.problem`` say which and why.

    >>> str(ImageError("train/a.jpg", "empty file (0 bytes)"))
    'train/a.jpg: empty file (0 bytes)'
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _check_size_arg(size) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {size!r}")
    return w, h


def _open(fp: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    """Identify the image and check its header size; nothing decoded yet."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", _CORRUPT_EXIF, UserWarning)  # see _orientation
            img = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(name, f"too many pixels (possible decompression bomb): {e}") from None
    except UnidentifiedImageError:
        raise ImageError(name, "cannot identify image (not an image, or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as e:
        raise ImageError(name, f"truncated or corrupt (unreadable header): {e}") from None
    except MemoryError:
        raise ImageError(name, "truncated or corrupt: out of memory reading the header") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError(name, f"invalid size {w}x{h}")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            name,
            f"too many pixels (possible decompression bomb): {w}x{h} = {w * h:,} "
            f"exceeds max_pixels={max_pixels:,}",
        )
    return img


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when absent or unreadable (a broken EXIF block costs the orientation,
    not the photo). For any format but JPEG call it only after ``img.load()`` succeeded: PIL's PNG reader
    decodes the pixels to look for an ``eXIf`` chunk after the image data, and a decoding error caught
    here would leave a zero-filled image that a later ``load()`` accepts as loaded."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", _CORRUPT_EXIF, UserWarning)
            value = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - any EXIF parsing failure (the pixels are already checked)
        return 1
    return value if 1 <= value <= 8 else 1


def _transpose(img: Image.Image, orientation: int) -> Image.Image:
    """The decoded image shown upright for an EXIF ``orientation`` of 2-8."""
    return img.transpose(_TRANSPOSE[orientation])


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited over :data:`BACKGROUND`."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16/32-bit greyscale: PIL's convert clips instead of scaling.
        arr = np.asarray(img, dtype=np.float64)
        if mode != "F":
            arr = arr / 257.0
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    try:
        if has_alpha:
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise ImageError(name, f"cannot convert mode {mode!r} to RGB: {e}") from None


def _decode(
    fp: BinaryIO,
    name: str,
    size: tuple[int, int] | None,
    max_pixels: int,
    draft_size: tuple[int, int] | None = None,
) -> np.ndarray:
    img = _open(fp, name, max_pixels)
    with img:
        draft_size = draft_size or size
        if draft_size is not None and img.format in _JPEG_FORMATS:
            # A JPEG's EXIF comes with its header (nothing decoded), and draft must precede load().
            if _orientation(img) in _SWAPPING_ORIENTATIONS:
                draft_size = draft_size[::-1]
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale (never below draft_size).
            img.draft("RGB", draft_size)
        try:
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(name, f"too many pixels (possible decompression bomb): {e}") from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as e:
            raise ImageError(name, f"truncated or corrupt: {e}") from None
        except MemoryError:
            raise ImageError(name, "truncated or corrupt: out of memory while decoding") from None
        # Only now, with every pixel decoded (see _orientation).
        orientation = _orientation(img)
        if orientation != 1:
            img = _transpose(img, orientation)
        img = _to_rgb(img, name)
        if size is not None:
            img = resize(img, size)
        arr = np.array(img, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise ImageError(name, f"decoded to unexpected shape {arr.shape}")
    return arr


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`img` at ``size=(width, height)`` as training sees photos: Lanczos, with a box reduction first
    when the image is 3x or more the target (``reducing_gap=3``). The one definition of that resize;
    `pawtf.data.photos.resize_like_training` applies it to arrays, the export's in-graph decoder
    mirrors it."""
    if img.size == tuple(size):
        return img
    return img.resize(tuple(size), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a file"


def _open_file(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading, with precise errors for missing, empty and special files.

    Only a regular file is opened: a named pipe would block the reader forever. The file is opened
    without blocking and checked again through its descriptor, so one swapped for a pipe after the
    first check cannot block either.
    """
    path = Path(path)
    name = str(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(name, "missing (no such file)") from None
    except OSError as e:
        raise ImageError(name, f"cannot access: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(name, f"not a regular file ({_kind(st.st_mode)})")
    if st.st_size == 0:
        raise ImageError(name, "empty file (0 bytes)")
    try:
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise ImageError(name, f"cannot open: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(name, f"not a regular file ({_kind(mode)})")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | Path) -> bytes:
    """The bytes of the image file ``path``, read as :func:`load_rgb` opens files (only regular files,
    never blocking on a named pipe), for decoders that take bytes (e.g. a SavedModel's).

    Args:
        path: the file.

    Returns:
        Its content (at least one byte; not checked to be an image).

    Raises:
        ImageError: the file is missing, not a regular file (a folder, a named pipe...), empty, or
            cannot be read.

    >>> read_bytes("cat.jpg")[:3]  # doctest: +SKIP
    b'\\xff\\xd8\\xff'
    """
    name = str(path)
    with _open_file(path) as fh:
        try:
            data = fh.read()
        except OSError as e:
            raise ImageError(name, f"cannot read: {e.strerror or e}") from None
    if not data:  # emptied since it was checked
        raise ImageError(name, "empty file (0 bytes)")
    return data


def load_rgb(
    path: str | Path,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read an image file as an RGB ``uint8`` array of shape ``(H, W, 3)``.

    ``size=(width, height)`` resizes (Lanczos; JPEGs are first decoded at a
    reduced scale when much larger). Raises :class:`ImageError` for a missing,
    empty, unidentifiable, too large or truncated file.

    >>> load_rgb("cat.jpg").shape               # doctest: +SKIP
    (375, 500, 3)
    >>> load_rgb("cat.jpg", size=(64, 32)).shape  # doctest: +SKIP
    (32, 64, 3)
    """
    size = _check_size_arg(size)
    name = str(path)
    with _open_file(path) as fh:
        return _decode(fh, name, size, max_pixels)


def decode_rgb(
    data: bytes,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = "<bytes>",
) -> np.ndarray:
    """Like :func:`load_rgb` for an in-memory encoded image (e.g. an upload).

    >>> decode_rgb(open("cat.jpg", "rb").read(), size=(224, 224)).shape  # doctest: +SKIP
    (224, 224, 3)
    """
    size = _check_size_arg(size)
    if not data:
        raise ImageError(name, "empty data (0 bytes)")
    return _decode(io.BytesIO(bytes(data)), name, size, max_pixels)


def check_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise :class:`ImageError` unless ``path`` is a usable image.

    The whole file is decoded (JPEGs at 1/8 scale, which still reads every
    byte, so truncation is caught) and converted to RGB; nothing is returned.

    >>> check_image("train/0007de18844b0dbbb5e1f607da0606e0.jpg")  # doctest: +SKIP
    """
    with _open_file(path) as fh:
        _decode(fh, str(path), None, max_pixels, draft_size=(1, 1))

