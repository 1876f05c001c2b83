"""The in-graph image decoder of the exported SavedModel: encoded bytes to the pixels training sees.

Decoding mirrors the training reader (:mod:`pawtf.data.images`, PIL) closely: JPEGs are decoded with the
accurate integer DCT at the same reduced scale PIL's ``draft`` picks, the EXIF orientation of JPEGs, PNGs
(an ``eXIf`` chunk before the image data) and WebPs is applied, transparency is composited over white
(PNG: only where the file has any, 1, 2 and 4-bit greys and palettes included; GIF: its transparent
colour), and resizing is an antialiased Lanczos-3 rounded to whole pixel
values, in PIL's order of passes. Measured train/serve skew on real photos: see ``benchmarks/serving.py``
and the README.

A bad image (not an image, truncated, too many pixels) fails with an ``InvalidArgumentError`` naming its
index in the batch.

>>> import tensorflow as tf
>>> png = tf.io.encode_png(tf.zeros([40, 30, 3], tf.uint8))
>>> decode_batch(tf.stack([png]), 16).shape
TensorShape([1, 16, 16, 3])
"""

from __future__ import annotations

import tensorflow as tf

from pawtf.data.images import BACKGROUND, DEFAULT_MAX_PIXELS

__all__ = ["decode_batch", "decode_image", "resize"]

_HEADER_BYTES = 30
_EXIF_SCAN_BYTES = 1 << 16  # EXIF sits in APP1, within the first 64 KiB of a JPEG
_MAX_SEGMENTS = 32
_MAX_CHUNKS = 1024  # PNG chunks, WebP chunks or GIF blocks walked looking for transparency and EXIF


def _bytes_at(data: tf.Tensor, start: int, length: int) -> tf.Tensor:
    """``length`` bytes of ``data`` from ``start`` as int32, zero-padded past the end."""
    chunk = tf.strings.substr(data, start, length)
    chunk = tf.strings.substr(tf.strings.join([chunk, b"\0" * length]), 0, length)
    return tf.cast(tf.io.decode_raw(chunk, tf.uint8), tf.int32)


def _formats(head: tf.Tensor) -> dict[str, tf.Tensor]:
    """Which format the first header bytes announce (boolean scalars)."""

    def starts(values, at=0):
        return tf.reduce_all(tf.equal(head[at:at + len(values)], tf.constant(list(values), tf.int32)))

    return {
        "jpeg": starts(b"\xff\xd8\xff"),
        "png": starts(b"\x89PNG\r\n\x1a\n"),
        "gif": starts(b"GIF8"),
        "bmp": starts(b"BM"),
        "webp": tf.logical_and(starts(b"RIFF"), starts(b"WEBP", 8)),
    }


def _header_size(data: tf.Tensor, head: tf.Tensor, fmt: dict[str, tf.Tensor]) -> tf.Tensor:
    """(height, width) as int64 read from the header, without decoding pixels (0, 0 when unknown)."""
    h = tf.cast(head, tf.int64)

    def le(at, n):
        return sum(h[at + k] * (256 ** k) for k in range(n))

    def be(at, n):
        return sum(h[at + k] * (256 ** (n - 1 - k)) for k in range(n))

    def webp():
        chunk = tf.strings.substr(data, 12, 4)
        vp8l_bits = le(21, 4)
        return tf.case([
            (tf.equal(chunk, b"VP8X"), lambda: tf.stack([le(27, 3) + 1, le(24, 3) + 1])),
            (tf.equal(chunk, b"VP8L"), lambda: tf.stack([(vp8l_bits // 16384) % 16384 + 1,
                                                         vp8l_bits % 16384 + 1])),
        ], default=lambda: tf.stack([le(28, 2) % 16384, le(26, 2) % 16384]))

    def bmp():
        height = le(22, 4)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # negative: top-down rows
        return tf.stack([height, le(18, 4)])

    return tf.case([
        (fmt["jpeg"], lambda: tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)),
        (fmt["png"], lambda: tf.stack([be(20, 4), be(16, 4)])),
        (fmt["gif"], lambda: tf.stack([le(8, 2), le(6, 2)])),
        (fmt["bmp"], bmp),
        (fmt["webp"], webp),
    ], default=lambda: tf.zeros([2], tf.int64))


def _window(data: tf.Tensor, start: tf.Tensor, length: int):
    """(at, n): ``at(i)`` is byte ``start + i`` of ``data`` as int32 (0 outside the ``length`` bytes
    from ``start`` and past the end), ``n`` how many bytes there are."""
    start = tf.clip_by_value(tf.convert_to_tensor(start, tf.int32), 0, tf.strings.length(data))
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int32)
    raw = tf.concat([raw, tf.zeros([16], tf.int32)], 0)  # reads past the end see zeros
    n = tf.shape(raw)[0] - 16

    def at(i):
        i = tf.convert_to_tensor(i, tf.int32)
        return tf.where((i >= 0) & (i < n), tf.gather(raw, tf.clip_by_value(i, 0, n - 1)), 0)

    return at, n


def _jpeg_exif(data: tf.Tensor):
    """(at, tiff): the first 64 KiB of a JPEG (see `_window`) and where its EXIF TIFF structure starts
    in them (in its APP1 segment); -1 if none."""
    at, n = _window(data, 0, _EXIF_SCAN_BYTES)

    def find_app1(pos, found, done, steps):
        marker = at(pos + 1)
        bad = tf.not_equal(at(pos), 0xFF)
        fill = tf.equal(marker, 0xFF)  # optional fill bytes before a marker
        stop = bad | tf.equal(marker, 0xDA) | tf.equal(marker, 0xD9)  # start of scan / end of image
        length = at(pos + 2) * 256 + at(pos + 3)
        exif = tf.equal(marker, 0xE1) & tf.reduce_all(
            tf.equal(tf.stack([at(pos + 4 + k) for k in range(6)]), tf.constant(list(b"Exif\0\0"))))
        new_found = tf.where(exif & ~stop & ~fill, pos + 10, found)
        new_done = stop | (new_found >= 0) | (length < 2) & ~fill
        new_pos = tf.where(fill, pos + 1, pos + 2 + length)
        return new_pos, new_found, new_done, steps + 1

    _, tiff, _, _ = tf.while_loop(
        lambda pos, found, done, steps: ~done & (steps < _MAX_SEGMENTS) & (pos + 4 <= n),
        find_app1, (tf.constant(2), tf.constant(-1), tf.constant(False), tf.constant(0)))
    return at, tiff


def _webp_exif(data: tf.Tensor) -> tf.Tensor:
    """Where a WebP's EXIF TIFF structure starts (its ``EXIF`` chunk, after an optional ``Exif``
    prefix); -1 if none."""
    n = tf.strings.length(data)

    def step(pos, found, done, steps):
        size = tf.reduce_sum(tf.cast(_bytes_at(data, pos + 4, 4), tf.int64) * [1, 2 ** 8, 2 ** 16, 2 ** 24])
        exif = tf.equal(tf.strings.substr(data, pos, 4), b"EXIF")
        following = tf.minimum(tf.cast(pos, tf.int64) + 8 + size + size % 2, tf.cast(n, tf.int64))
        return tf.cast(following, tf.int32), tf.where(exif, pos + 8, found), exif, steps + 1

    _, found, _, _ = tf.while_loop(
        lambda pos, found, done, steps: ~done & (steps < _MAX_CHUNKS) & (pos + 8 <= n),
        step, (tf.constant(12), tf.constant(-1), tf.constant(False), tf.constant(0)))
    prefixed = tf.equal(tf.strings.substr(data, tf.maximum(found, 0), 6), b"Exif\0\0")
    return tf.where((found >= 0) & prefixed, found + 6, found)


def _tiff_orientation(at, tiff: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) in the TIFF structure starting at byte ``tiff`` of a window ``at``
    (see `_window`); 1 when ``tiff`` is -1 or the structure is broken (as the training reader treats a
    broken EXIF block). A JPEG's structure is read in the window its APP1 segment was found in."""
    little = tf.equal(at(tiff), 0x49) & tf.equal(at(tiff + 1), 0x49)
    big = tf.equal(at(tiff), 0x4D) & tf.equal(at(tiff + 1), 0x4D)

    def u16(i):
        return tf.where(little, at(i) + at(i + 1) * 256, at(i) * 256 + at(i + 1))

    def u32(i):
        lo, hi = u16(i), u16(i + 2)
        return tf.where(little, lo + hi * 65536, lo * 65536 + hi)

    ifd = tiff + u32(tiff + 4)
    count = tf.clip_by_value(u16(ifd), 0, 256)
    entries = ifd + 2 + 12 * tf.range(count)
    tags = u16(entries)  # vectorised over all entries
    hits = tf.where(tf.equal(tags, 0x0112))[:, 0]
    value = tf.cond(tf.size(hits) > 0, lambda: u16(tf.gather(entries, tf.cast(hits[0], tf.int32)) + 8),
                    lambda: tf.constant(1))
    ok = (tiff >= 0) & (little | big) & (value >= 1) & (value <= 8)
    return tf.where(ok, value, 1)


def _structure(data: tf.Tensor, start: tf.Tensor):
    """(at, tiff) for a TIFF structure starting at byte `start` of `data` (-1: none): a window from
    there, the structure at its start."""
    at, _ = _window(data, start, _EXIF_SCAN_BYTES)
    return at, tf.where(start >= 0, 0, -1)


def _png_chunks(data: tf.Tensor, head: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(has_alpha, exif) of a PNG, from its chunks before the first ``IDAT`` (where ``tRNS`` must be, and
    ``eXIf`` is written). ``has_alpha``: an alpha channel (colour type 4 or 6) or a ``tRNS`` chunk; True
    too where the walk gives up after ``_MAX_CHUNKS`` chunks (libpng's alpha is then kept). ``exif``:
    where the ``eXIf`` chunk's TIFF structure starts, -1 if none."""
    n = tf.strings.length(data)

    def step(pos, trns, exif, done, steps):
        size = tf.reduce_sum(tf.cast(_bytes_at(data, pos, 4), tf.int64) * [2 ** 24, 2 ** 16, 2 ** 8, 1])
        kind = tf.strings.substr(data, pos + 4, 4)
        stop = tf.equal(kind, b"IDAT") | tf.equal(kind, b"IEND")
        following = tf.minimum(tf.cast(pos, tf.int64) + 12 + size, tf.cast(n, tf.int64))
        exif = tf.where(tf.equal(kind, b"eXIf") & (exif < 0), pos + 8, exif)
        return tf.cast(following, tf.int32), trns | tf.equal(kind, b"tRNS"), exif, stop, steps + 1

    _, trns, exif, done, _ = tf.while_loop(
        lambda pos, trns, exif, done, steps: ~done & (steps < _MAX_CHUNKS) & (pos + 8 <= n),
        step, (tf.constant(8), tf.constant(False), tf.constant(-1), tf.constant(False), tf.constant(0)))
    colour_type = head[25]
    return tf.equal(colour_type, 4) | tf.equal(colour_type, 6) | trns | ~done, exif


def _replace(data: tf.Tensor, pos: tf.Tensor, new: tf.Tensor | bytes, length: int) -> tf.Tensor:
    """``data`` with its ``length`` bytes from ``pos`` replaced by ``new``."""
    return tf.strings.join([tf.strings.substr(data, 0, pos), new,
                            tf.strings.substr(data, pos + length, tf.strings.length(data))])


def _gif_opaque(data: tf.Tensor) -> tf.Tensor:
    """The GIF with its first image's transparent colour made opaque white (that colour-table entry set
    to white, the transparency flag cleared), so TensorFlow decodes what the training reader composites
    over white (it gives black); unchanged without transparency, or where the blocks before the first
    image run past 64 KiB."""
    at, n = _window(data, 0, _EXIF_SCAN_BYTES)
    global_entries = tf.where(at(10) >= 128, 2 ** (at(10) % 8 + 1), 0)

    def step(pos, gce, in_blocks, done, steps):
        # Between blocks: 0x21 starts an extension (0xF9: graphic control), anything else ends the walk
        # (0x2C: the first image). In an extension's sub-blocks: a length byte, 0 ending them.
        b = at(pos)
        extension = ~in_blocks & tf.equal(b, 0x21)
        gce = tf.where(extension & tf.equal(at(pos + 1), 0xF9), pos, gce)
        new_pos = tf.where(in_blocks, pos + b + 1, tf.where(extension, pos + 2, pos))
        new_in_blocks = tf.where(in_blocks, tf.not_equal(b, 0), extension)
        return new_pos, gce, new_in_blocks, ~in_blocks & ~extension, steps + 1

    image, gce, _, _, _ = tf.while_loop(
        lambda pos, gce, in_blocks, done, steps: ~done & (steps < _MAX_CHUNKS) & (pos < n),
        step, (13 + 3 * global_entries, tf.constant(-1), tf.constant(False), tf.constant(False),
               tf.constant(0)))
    flags, index = at(gce + 3), at(gce + 6)
    local = at(image + 9) >= 128
    table = tf.where(local, image + 10, 13)
    entries = tf.where(local, 2 ** (at(image + 9) % 8 + 1), global_entries)
    usable = ((gce >= 0) & tf.equal(at(image), 0x2C) & tf.equal(at(gce + 2), 4) & tf.equal(flags % 2, 1)
              & (index < entries))

    def opaque():
        cleared = tf.gather(tf.constant([bytes([v]) for v in range(256)]), flags - 1)
        return _replace(_replace(data, gce + 3, cleared, 1), table + 3 * index, b"\xff\xff\xff", 3)

    return tf.cond(usable, opaque, lambda: data)


def _orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Apply an EXIF orientation as PIL's ``ImageOps.exif_transpose`` does."""
    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,                                         # 1: as stored
        lambda: tf.reverse(image, [1]),                        # 2: mirrored
        lambda: tf.reverse(image, [0, 1]),                     # 3: rotated 180
        lambda: tf.reverse(image, [0]),                        # 4: flipped
        lambda: transpose(image),                              # 5: transposed
        lambda: tf.reverse(transpose(image), [1]),             # 6: rotated 90 clockwise to view
        lambda: tf.reverse(transpose(image), [0, 1]),          # 7: transversed
        lambda: tf.reverse(transpose(image), [0]),             # 8: rotated 90 counter-clockwise
    ]
    return tf.switch_case(orientation - 1, branches)


def _over_white(rgba: tf.Tensor) -> tf.Tensor:
    """uint8 RGBA -> float32 RGB over :data:`BACKGROUND`, rounded like PIL's ``alpha_composite``."""
    rgba = tf.cast(rgba, tf.float32)
    alpha = rgba[..., 3:] / 255.0
    return _round(rgba[..., :3] * alpha + tf.constant(BACKGROUND, tf.float32) * (1.0 - alpha))


def _round(x: tf.Tensor) -> tf.Tensor:
    """To whole pixel values in 0-255, halves rounded up (as PIL's 8-bit arithmetic does)."""
    return tf.floor(tf.clip_by_value(x, 0.0, 255.0) + 0.5)


def _reduce(x: tf.Tensor, fy: tf.Tensor, fx: tf.Tensor) -> tf.Tensor:
    """PIL's ``Image.reduce((fx, fy))``: means over fy x fx blocks from the top left; the last, partial
    blocks average the pixels they have."""
    h, w = tf.shape(x)[0], tf.shape(x)[1]
    pad = [[0, (-h) % fy], [0, (-w) % fx], [0, 0]]
    ones = tf.pad(tf.ones_like(x[..., :1]), pad)
    x = tf.pad(x, pad)
    blocks = tf.stack([(h + fy - 1) // fy, fy, (w + fx - 1) // fx, fx])

    def block_sums(t):
        return tf.reduce_sum(tf.reshape(t, tf.concat([blocks, tf.shape(t)[-1:]], 0)), axis=[1, 3])

    return _round(block_sums(x) / block_sums(ones))


def _lanczos_axis0(x: tf.Tensor, out: int, scale: tf.Tensor) -> tf.Tensor:
    """Resample axis 0 of [n, m, c] to ``out`` samples (antialiased Lanczos-3, ``scale`` = out / input
    extent), rounded to whole values. The other axes are folded into channels, so the op does one pass
    (a 2-D resize with an identity axis would pay for a second, 7-tap pass)."""
    n, m, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    t = tf.raw_ops.ScaleAndTranslate(
        images=tf.reshape(x, tf.stack([1, n, 1, m * c])), size=tf.stack([out, 1]),
        scale=tf.stack([scale, 1.0]), translation=tf.zeros([2]), kernel_type="lanczos3", antialias=True)
    return _round(tf.reshape(t, tf.stack([out, m, c])))


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """[h, w, 3] -> float32 [size, size, 3] as PIL's ``resize(LANCZOS, reducing_gap=3.0)`` (the training
    reader) does it: first a box reduction by whole factors when the image is 6x or more the target, then
    antialiased Lanczos-3 one axis at a time, each pass kept to whole 0-255 values as PIL keeps 8 bits
    (one float 2-D resize differs by up to ~20 levels on edges that ring), in PIL's order of passes."""
    x = tf.cast(image, tf.float32)
    shape = tf.shape(x)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    fy = tf.maximum(tf.cast(h / size / 3.0, tf.int32), 1)
    fx = tf.maximum(tf.cast(w / size / 3.0, tf.int32), 1)
    x = tf.cond((fx > 1) | (fy > 1), lambda: _reduce(x, fy, fx), lambda: x)
    # After a reduction PIL samples the box (0, 0, w / fx, h / fy) of the reduced image.
    bw, bh = w / tf.cast(fx, tf.float32), h / tf.cast(fy, tf.float32)
    sx, sy = size / bw, size / bh

    def horizontal_first():
        t = _lanczos_axis0(tf.transpose(x, [1, 0, 2]), size, sx)  # [size (x), h, 3]
        return _lanczos_axis0(tf.transpose(t, [1, 0, 2]), size, sy)

    def vertical_first():
        t = _lanczos_axis0(x, size, sy)  # [size (y), w, 3]
        return tf.transpose(_lanczos_axis0(tf.transpose(t, [1, 0, 2]), size, sx), [1, 0, 2])

    # Pillow 13 runs the vertical pass first when that saves work; measured on 120 random shapes, for a
    # square target that is when (max(h, S) - S) > 2 (max(w, S) - S).
    vertical = (tf.maximum(bh, size) - size) > 2.0 * (tf.maximum(bw, size) - size)
    return tf.ensure_shape(tf.cond(vertical, vertical_first, horizontal_first), [size, size, 3])


def decode_image(data: tf.Tensor, size: int, index: tf.Tensor | int = 0,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """Decode one encoded image (scalar tf.string) into float32 [size, size, 3] RGB pixels 0-255, in-graph.

    Mirrors :func:`pawtf.data.images.decode_rgb`: JPEG reduced-scale decoding as PIL's ``draft``, EXIF
    orientation (JPEG, PNG, WebP), alpha and transparent colours over white, Lanczos resize. Fails with
    ``InvalidArgumentError`` naming ``image_bytes[index]`` for data that is not an image (or is truncated
    or corrupt) or has more than ``max_pixels`` pixels.
    """
    where = tf.strings.format("image_bytes[{}]", [index])
    length = tf.strings.length(data)
    head = _bytes_at(data, 0, _HEADER_BYTES)
    fmt = _formats(head)
    known = tf.reduce_any(tf.stack(list(fmt.values())))
    check_known = tf.debugging.Assert(known, [tf.strings.join([
        where, tf.strings.format(": not a JPEG, PNG, GIF, BMP or WebP image ({} bytes)", [length])])])
    with tf.control_dependencies([check_known]):
        hw = _header_size(data, head, fmt)
    bmp_bits = head[28] + head[29] * 256
    check_bmp = tf.debugging.Assert(~fmt["bmp"] | (bmp_bits >= 16), [tf.strings.join([
        where, tf.strings.format(": {}-bit palette BMP is not supported; send JPEG or PNG", [bmp_bits])])])
    pixels = hw[0] * hw[1]
    check_size = tf.debugging.Assert(pixels <= max_pixels, [tf.strings.join([
        where, tf.strings.format(": too many pixels (possible decompression bomb): {}x{} exceeds "
                                 "max_pixels={}", (hw[1], hw[0], max_pixels))])])

    def jpeg():
        # PIL's draft: the largest libjpeg scale 1/8, 1/4, 1/2 keeping both sides >= size.
        scale = tf.minimum(hw[0] // size, hw[1] // size)
        branch = tf.where(scale >= 8, 3, tf.where(scale >= 4, 2, tf.where(scale >= 2, 1, 0)))
        decoded = tf.switch_case(tf.cast(branch, tf.int32), [
            (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"))
            for r in (1, 2, 4, 8)])
        return resize(_orient(decoded, _tiff_orientation(*_jpeg_exif(data))), size)

    def png():
        # Four channels: libpng expands palettes, greys and tRNS transparency to RGBA. Without
        # transparency its alpha is a filler of the file's bit depth (1, 3 or 15 below 8 bits, not 255):
        # dropped, as PIL has no alpha for such a file.
        rgba = tf.io.decode_png(data, channels=4)
        has_alpha, exif = _png_chunks(data, head)
        rgb = tf.cond(has_alpha, lambda: _over_white(rgba), lambda: tf.cast(rgba[..., :3], tf.float32))
        return resize(_orient(rgb, _tiff_orientation(*_structure(data, exif))), size)

    def other():
        # GIF, BMP, WebP in their own channel count (WebP cannot be asked for a channel it lacks); a GIF's
        # transparent colour made white first, a WebP's EXIF orientation applied after.
        source = tf.cond(fmt["gif"], lambda: _gif_opaque(data), lambda: data)
        decoded = tf.cast(tf.io.decode_image(source, channels=0, expand_animations=False), tf.float32)
        channels = tf.shape(decoded)[-1]
        rgb = tf.switch_case(tf.clip_by_value(channels, 1, 4) - 1, [
            lambda: tf.tile(decoded[..., :1], [1, 1, 3]),
            lambda: _over_white(tf.concat([tf.tile(decoded[..., :1], [1, 1, 3]), decoded[..., 1:2]], -1)),
            lambda: decoded[..., :3],
            # 32-bit BMP rows carry an unused fourth byte, not alpha (as PIL reads them).
            lambda: tf.cond(fmt["bmp"], lambda: decoded[..., :3], lambda: _over_white(decoded)),
        ])
        orientation = tf.cond(fmt["webp"], lambda: _tiff_orientation(*_structure(data, _webp_exif(data))),
                              lambda: 1)
        return resize(_orient(rgb, orientation), size)

    with tf.control_dependencies([check_size, check_bmp]):
        image = tf.case([
            (fmt["jpeg"], jpeg),
            (fmt["png"], png),
        ], default=other)
    return tf.ensure_shape(image, [size, size, 3])


def decode_batch(image_bytes: tf.Tensor, size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                 parallel_iterations: int = 16) -> tf.Tensor:
    """tf.string [batch] -> float32 [batch, size, size, 3]; see :func:`decode_image`."""
    n = tf.shape(image_bytes)[0]
    return tf.map_fn(lambda args: decode_image(args[0], size, args[1], max_pixels),
                     (image_bytes, tf.range(n)),
                     fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
                     parallel_iterations=parallel_iterations)
