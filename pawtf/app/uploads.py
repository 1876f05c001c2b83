"""Uploaded photos: what a request may hold (:class:`Limits`), each file as sent (:class:`Upload`), why one
is refused before decoding (:func:`problem`), and the files staged under names the server makes up
(:func:`staged`), in a private temporary folder removed afterwards.

Nothing from the client is used as a path: a staged file is ``000.jpg``, ``001.png``..., its suffix kept
only where it is a photo's.

>>> problem(Upload("big.jpg", b"", size=30 * 2 ** 20), Limits())
"30.0 MB is over the limit of 25.0 MB a photo (the app's --max-mb)"
>>> with staged([Upload("../../etc/passwd", b"\\xff\\xd8 not really a JPEG")], Limits()) as paths:
...     paths[0].name
'000'
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from PIL import Image

from pawtf.data.images import DEFAULT_MAX_PIXELS
from pawtf.data.photos import PHOTO_EXTENSIONS

__all__ = ["LimitError", "Limits", "Upload", "check_count", "problem", "register_heif", "staged"]

#: Suffixes kept for the staged copy of an upload (the reader sniffs the content anyway); HEIC/HEIF
#: decode where Pillow has the pillow-heif plug-in.
_SUFFIXES = PHOTO_EXTENSIONS + (".heic", ".heif")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may hold: ``max_photos`` photos, each at most ``max_bytes`` bytes and
    ``max_pixels`` pixels (width x height, read from the header before decoding: the decompression-bomb
    guard)."""

    max_photos: int = 20
    max_bytes: int = 25 * 2 ** 20
    max_pixels: int = DEFAULT_MAX_PIXELS


class Upload(NamedTuple):
    """One uploaded file: the name the user's computer gave it (shown, never used as a path), its bytes and
    its size in bytes (when the bytes were not all read: a file over the limit)."""

    name: str
    data: bytes
    size: int | None = None


class LimitError(ValueError):
    """A request over :class:`Limits` as a whole (too many photos); the page shows the message."""


def register_heif() -> bool:
    """Let Pillow read HEIC/HEIF photos where pillow-heif is installed; whether it can."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def amount(n: int) -> str:
    """A byte count for people.

    >>> amount(200_000), amount(25 * 2 ** 20)
    ('195 kB', '25.0 MB')
    """
    return f"{n / 1024:.0f} kB" if n < 2 ** 20 else f"{n / 2 ** 20:.1f} MB"


def check_count(uploads: Sequence[Upload], limits: Limits) -> None:
    """Refuse a request without photos or with more than ``limits.max_photos``.

    Raises:
        LimitError: saying which, and the option that sets the limit.
    """
    if not uploads:
        raise LimitError("no photos were sent: choose or drop one or more photos")
    if len(uploads) > limits.max_photos:
        raise LimitError(f"{len(uploads)} photos sent; at most {limits.max_photos} at a time "
                         "(the app's --max-photos): send them in smaller groups")


def problem(upload: Upload, limits: Limits, heif: bool = False) -> str | None:
    """Why `upload` is refused before decoding (empty, too many bytes or pixels, a HEIC photo without
    `heif` support), or None."""
    size = len(upload.data) if upload.size is None else upload.size
    if size == 0:
        return "empty file (0 bytes)"
    if size > limits.max_bytes or len(upload.data) > limits.max_bytes:
        return (f"{amount(size)} is over the limit of {amount(limits.max_bytes)} a photo (the app's "
                "--max-mb)")
    try:  # the header only: a decompression bomb is refused before any pixel is decoded
        with Image.open(io.BytesIO(upload.data)) as img:
            width, height = img.size
    except Exception:  # noqa: BLE001 - an unreadable file: the training reader says why, later
        if Path(upload.name).suffix.lower() in (".heic", ".heif") and not heif:
            return "HEIC photo, and this installation cannot read HEIC: pip install pillow-heif, or send a JPEG"
        return None
    if width * height > limits.max_pixels:
        return (f"{width} x {height} pixels is over the limit of {limits.max_pixels:,} pixels a photo "
                "(the app's --max-pixels)")
    return None


@contextlib.contextmanager
def staged(uploads: Sequence[Upload], limits: Limits, heif: bool = False) -> Iterator[list[Path | str]]:
    """The uploads written to a private temporary folder (removed afterwards), each as ``NNN<suffix>``;
    an upload refused by :func:`problem` stays its problem (a str) instead of a path."""
    with tempfile.TemporaryDirectory(prefix="pawtf-app-") as tmp:
        out: list[Path | str] = []
        for i, upload in enumerate(uploads):
            refused = problem(upload, limits, heif)
            if refused is not None:
                out.append(refused)
                continue
            suffix = Path(upload.name).suffix.lower()
            path = Path(tmp) / f"{i:03d}{suffix if suffix in _SUFFIXES else ''}"
            path.write_bytes(upload.data)
            out.append(path)
        yield out
