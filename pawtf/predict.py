"""Everyday scoring: score photos with a run or an exported SavedModel, rank one pet's photos.

:func:`predict` scores every photo of files and folders (found as `pawtf.data.photos` finds photos, each
with its flags looked up by file name) with a scorer (`pawtf.scorers`: a run or a SavedModel); every
photo gets a :class:`~pawtf.scorers.Score`, and a photo that cannot be read or scored gets its error
instead while the rest of the batch goes on. :func:`rank` sorts one pet's photos best first and
:func:`contact_sheet` draws them.

Example:

>>> from pawtf.predict import load_scorer, predict, rank, contact_sheet
>>> scorer = load_scorer("runs/demo")                                     # doctest: +SKIP
>>> scores = predict(scorer, ["photos/"], metadata="photos.csv")          # doctest: +SKIP
>>> ranked = rank(scorer, ["rex/"]); contact_sheet(ranked, "rex.png")     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import zlib
from collections import deque
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from pawtf.data.images import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from pawtf.data.photos import find_photos, photo_flags
from pawtf.drawing import ellipsize, font, wrap
from pawtf.runs import DEMO_MODEL_NOTE, write_atomically
from pawtf.scorers import KerasScorer, Score, Scorer, load_scorer

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_SHEET", "DEFAULT_THUMB", "Score", "collect_photos", "contact_sheet",
           "csv_row", "flags_of", "in_shard", "is_demo_model", "load_scorer", "predict", "predict_csv", "rank",
           "summary", "write_scores"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
#: Side of a contact sheet's thumbnails, in pixels, and where `pawtf rank` draws the sheet unless told.
DEFAULT_THUMB = 220
DEFAULT_SHEET = "contact_sheet.png"


def is_demo_model(scorer: Scorer) -> bool:
    """Whether the scorer's model was trained on pawtf's synthetic demo data (a run says so in its
    metrics, an export in its ``pawtf.json``)."""
    if scorer.run is not None:
        return scorer.run.trained_on_demo
    return bool((getattr(scorer, "info", None) or {}).get("trained_on", {}).get("synthetic_demo"))


def collect_photos(inputs: Iterable[str | Path]) -> list[Score]:
    """One unscored :class:`Score` per photo of `inputs` (files and folders, see
    `pawtf.data.photos.find_photos`), in input order; inputs that do not exist, and folders without
    photos, come back with ``error`` set."""
    out: list[Score] = []
    seen: set[str] = set()
    for item in inputs:
        photos, problems = find_photos([item])
        out += [Score(path, error=problem) for path, problem in problems.items()]
        for photo in map(str, photos):
            if photo not in seen:
                seen.add(photo)
                out.append(Score(photo))
    return out


def flags_of(results: list[Score], scorer: Scorer, metadata) -> np.ndarray | None:
    """Flags per photo (rows aligned with `results`) or None where the model takes none; photos without a
    CSV row get an error (`metadata`: as :func:`predict` takes it)."""
    found = photo_flags([r.path for r in results], metadata, scorer.uses_metadata)
    if found.note:
        logger.warning("warning: " + found.note)
    for i, error in found.errors.items():
        if results[i].ok:
            results[i].error = error
    return found.flags


def predict(scorer: Scorer, inputs: Iterable[str | Path], metadata=None, *,
            batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> list[Score]:
    """Score every photo in `inputs` (files and folders).

    Args:
        scorer: a run's or a SavedModel's scorer (`load_scorer`).
        inputs: photos and folders of photos.
        metadata: a CSV path or a dict Id -> flags (the Id is the file name without extension); needed
            by models that take the flags (without it they are all 0, and a warning says so).
        batch_size: photos per forward pass.
        progress: show a progress bar (stderr).

    Returns:
        One `Score` per photo (and per missing input) in input order; a photo that cannot be scored has
        ``error`` set and does not stop the others.
    """
    results = collect_photos(inputs)
    if is_demo_model(scorer):
        logger.warning(DEMO_MODEL_NOTE)
    for idx, scores in _scored_batches(scorer, results, metadata, batch_size, progress):
        for i, score in zip(idx, scores):
            results[i] = score
    return results


def _scored_batches(scorer: Scorer, results: list[Score], metadata, batch_size: int, progress: bool,
                    done: int = 0) -> Iterator[tuple[list[int], list[Score]]]:
    """Score `results` (unscored `Score`s; those with an error pass through) batch by batch, in order:
    yields (indices into `results`, their scores), the photos of the next two batches decoding in
    threads meanwhile. `done`: photos already scored elsewhere, for the progress bar's count."""
    photos = [r.path for r in results]
    flags = flags_of(results, scorer, metadata)
    todo = [i for i, r in enumerate(results) if r.ok]
    failed = [i for i, r in enumerate(results) if not r.ok]
    if failed:
        yield failed, [results[i] for i in failed]
    batches = [todo[k:k + batch_size] for k in range(0, len(todo), batch_size)]

    def meta(idx):
        return None if flags is None else flags[idx]

    with tqdm(total=len(photos) + done, initial=done + len(failed), desc="scoring", unit="photo",
              disable=not progress, file=sys.stderr, leave=False, mininterval=1.0) as bar:
        if isinstance(scorer, KerasScorer):
            # Decode the next batches in threads while the model scores this one.
            pending = deque((idx, scorer.decode_async([photos[i] for i in idx])) for idx in batches[:2])
            for b in range(len(batches)):
                idx, futures = pending.popleft()
                if b + 2 < len(batches):
                    pending.append((batches[b + 2], scorer.decode_async([photos[i] for i in batches[b + 2]])))
                yield idx, scorer.score_decoded([photos[i] for i in idx], futures, meta(idx))
                bar.update(len(idx))
        else:
            for idx in batches:
                yield idx, scorer.score_files([photos[i] for i in idx], meta(idx))
                bar.update(len(idx))


def in_shard(path: str, shard: tuple[int, int] | None) -> bool:
    """Whether photo `path` belongs to shard ``(i, n)`` (1-based ``i`` of ``n``): decided by a CRC-32 of
    its file name alone, so machines that mount the catalogue under other folders split it alike.

    >>> [in_shard("a.jpg", (i, 3)) for i in (1, 2, 3)]
    [False, False, True]
    """
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(Path(path).name.encode("utf-8", "surrogateescape")) % n == i - 1


def predict_csv(scorer: Scorer, inputs: Iterable[str | Path], out: str | Path, metadata=None, *,
                shard: tuple[int, int] | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                progress: bool = True, overwrite: bool = False) -> dict:
    """Score a catalogue into the CSV `out` (as `write_scores` writes it) as it goes: each batch's rows
    are appended and flushed, so memory stays flat however many photos there are, and a killed run
    started again with the same model, inputs and shard scores only the photos not yet in `out`.

    ``out.json`` beside the CSV records the model and shard the rows came from; a CSV written by
    another model or shard is refused rather than mixed (pass `overwrite`). Photos that failed are
    tried again by the next call (their rows are replaced), so fixing a cause and running again
    completes the CSV.

    Args:
        shard: ``(i, n)``: score only the photos of shard i of n (see `in_shard`), so that n machines
            split a catalogue without talking to each other.

    Returns:
        ``photos`` (in this shard), ``scored`` and ``errors`` (this call), ``already`` (found in `out`),
        ``out`` and ``summary`` (the line `summary` writes).

    Raises:
        FileExistsError: `out` holds rows from another model or shard, or from no known run.
    """
    out = Path(out)
    state_path = out.with_name(out.name + ".json")
    model = scorer.run.path if scorer.run is not None else getattr(scorer, "path", None)
    state = {"model": str(Path(model).resolve()) if model is not None else scorer.description,
             "shard": None if shard is None else f"{shard[0]}/{shard[1]}"}
    done, header = set(), None
    if out.exists() and not overwrite:
        recorded = json.loads(state_path.read_text()) if state_path.exists() else None
        if recorded is None or {k: recorded.get(k) for k in state} != state:
            raise FileExistsError(f"{out} holds scores from {'another model or shard' if recorded else 'elsewhere'}"
                                  f"{f' ({recorded})' if recorded else ''}: choose another --out or pass --overwrite")
        header, done = _rows_written(out)
    results = [r for r in collect_photos(inputs) if in_shard(r.path, shard)]
    total = len(results)
    results = [r for r in results if r.path not in done]
    if done:
        logger.info("resuming %s: %d of %d photos already scored, %d to go", out, total - len(results), total,
                    len(results))
    if is_demo_model(scorer):
        logger.warning(DEMO_MODEL_NOTE)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(state_path, lambda tmp: tmp.write_text(json.dumps(state) + "\n"))
    counts = {"photos": total, "scored": 0, "errors": 0, "already": total - len(results), "out": str(out)}
    pending: list[Score] = []  # rows held until a scored photo names the model's columns
    failed: list[Score] = []  # the first 20 photos not scored, for the summary
    with open(out, "w" if header is None else "a", newline="", errors="surrogateescape") as fh:  # "w": no scores yet
        writer = csv.writer(fh)
        for _, scores in _scored_batches(scorer, results, metadata, batch_size, progress, done=len(done)):
            counts["scored"] += sum(s.ok for s in scores)
            counts["errors"] += sum(not s.ok for s in scores)
            failed += [s for s in scores if not s.ok][:20 - len(failed)]
            pending += scores
            if header is None and any(s.ok for s in pending):
                header = ["path", "score", *dict.fromkeys(k for s in pending for k in s.extra), "error"]
                writer.writerow(header)
            if header is not None:
                writer.writerows(csv_row(s, header) for s in pending)
                fh.flush()
                pending = []
        if pending:  # nothing could be scored: the rows still say why
            header = header or ["path", "score", "error"]
            if fh.tell() == 0:
                writer.writerow(header)
            writer.writerows(csv_row(s, header) for s in pending)
    counts["summary"] = (summary(failed, counts["scored"] + counts["errors"], counts["errors"])
                         + (f"; {counts['already']} were already in {out}" if counts["already"] else ""))
    return counts


def csv_row(score: Score, header: list[str]) -> list[str]:
    """`score` as a row of a scores CSV with columns `header` (``path``, ``score``, the extra columns,
    ``error``), numbers written as `pawtf predict` writes them."""
    return [score.path, _cell(score.score), *(_cell(score.extra.get(k)) for k in header[2:-1]), score.error or ""]


def _rows_written(out: Path) -> tuple[list[str] | None, set[str]]:
    """The header and the paths of the photos `out` holds scores for. A row cut off by a kill is
    dropped; so are rows with an error (the photo is tried again: its cause may be fixed), and with
    them the header when no row was scored (the model's columns are then not known yet)."""
    with open(out, newline="", errors="surrogateescape") as fh:
        text = fh.read()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text)))
    header, body = (rows[0], [r for r in rows[1:] if r]) if rows else (None, [])
    if header is None or "error" not in header:
        return None, set()
    at = header.index("error")
    scored = [r for r in body if len(r) == len(header) and not r[at]]
    if len(scored) < len(body) or len(text) < out.stat().st_size:
        def rewrite(tmp: Path) -> None:
            with open(tmp, "w", newline="", errors="surrogateescape") as fh:
                if scored:
                    csv.writer(fh).writerows([header, *scored])

        write_atomically(out, rewrite)
    return (header if scored else None), {r[0] for r in scored}


def write_scores(scores: Sequence[Score], out) -> None:
    """CSV with columns ``path, score``, then whatever else the model predicts (each flag's probability
    under the flag's name; ``bucket`` and ``p_poor``, ``p_average``, ``p_great``), then ``error``
    (values empty on error), to a path or an open text file."""
    own = isinstance(out, (str, Path))
    # A file name that is not UTF-8 (possible on Linux) is written back as its own bytes.
    fh = open(out, "w", newline="", errors="surrogateescape") if own else out
    extra = list(dict.fromkeys(k for s in scores for k in s.extra))
    try:
        writer = csv.writer(fh)
        header = ["path", "score", *extra, "error"]
        writer.writerow(header)
        writer.writerows(csv_row(s, header) for s in scores)
    finally:
        if own:
            fh.close()


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def rank(scorer: Scorer, inputs: Iterable[str | Path], metadata=None, **kwargs) -> list[Score]:
    """Score the photos of one pet (as `predict`) and sort them best first (photos with errors last, in
    input order)."""
    scores = predict(scorer, inputs, metadata, **kwargs)
    good = sorted((s for s in scores if s.ok), key=lambda s: -s.rank_value)
    return good + [s for s in scores if not s.ok]


def _thumbnail(path: str, side: int) -> Image.Image | None:
    try:
        img = Image.fromarray(load_rgb(path, max_pixels=DEFAULT_MAX_PIXELS))
    except ImageError:
        return None
    img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return img


def contact_sheet(ranked: Sequence[Score], out: str | Path, *, thumb: int = DEFAULT_THUMB, columns: int | None = None,
                  title: str | None = None, warning: str | None = None) -> Path:
    """Write a PNG of thumbnails best first, each labelled with its rank, score and file name; the best
    photo is framed. Photos that could not be scored appear last with their error. `warning` (e.g. that
    the model learnt from the demo data) is written in red under the title, wrapped to the sheet's width.

    Raises:
        ValueError: no photos.
    """
    from PIL import ImageDraw

    ranked = list(ranked)
    if not ranked:
        raise ValueError("no photos to put on a contact sheet")
    n = len(ranked)
    columns = columns or min(n, max(1, int(np.ceil(np.sqrt(n * 1.5)))))
    rows = int(np.ceil(n / columns))
    pad, label_h = 12, 58
    cell_w, cell_h = thumb + pad, thumb + label_h + pad
    width = columns * cell_w + pad
    big, small = font(20), font(12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    warning_lines = wrap(measure, warning, small, width - 2 * pad) if warning else []
    title_h = (34 if title else 0) + 16 * len(warning_lines) + (6 if title or warning_lines else 0)
    sheet = Image.new("RGB", (width, rows * cell_h + pad + title_h), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), ellipsize(draw, title, big, width - 2 * pad), fill=(20, 20, 20), font=big)
    for k, line in enumerate(warning_lines):
        draw.text((pad, pad + (34 if title else 0) + 16 * k), line, fill=(190, 20, 20), font=small)
    for position, s in enumerate(ranked):
        r, c = divmod(position, columns)
        x0, y0 = pad + c * cell_w, pad + title_h + r * cell_h
        tile = _thumbnail(s.path, thumb) if s.ok else None
        if tile is not None:
            ox, oy = x0 + (thumb - tile.width) // 2, y0 + (thumb - tile.height) // 2
            sheet.paste(tile, (ox, oy))
            if position == 0:
                draw.rectangle([ox - 4, oy - 4, ox + tile.width + 3, oy + tile.height + 3],
                               outline=(30, 160, 60), width=4)
        else:
            draw.rectangle([x0, y0, x0 + thumb - 1, y0 + thumb - 1], fill=(225, 225, 225))
        ty = y0 + thumb + 4
        if s.ok:
            draw.text((x0, ty), f"#{position + 1}   {s.label}", fill=(20, 20, 20), font=big)
        else:
            draw.text((x0, ty), "not scored", fill=(170, 30, 30), font=big)
        draw.text((x0, ty + 24), ellipsize(draw, Path(s.path).name, small, thumb), fill=(70, 70, 70),
                  font=small)
        if not s.ok:  # the start of an error says what is wrong: wrap it, never cut it from the left
            for k, line in enumerate(wrap(draw, s.error, small, thumb, max_lines=2)):
                draw.text((x0, ty + 38 + 13 * k), line, fill=(170, 30, 30), font=small)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG")
    return out


def summary(scores: Sequence[Score], total: int | None = None, n_bad: int | None = None) -> str:
    """One line: how many photos were scored, and the errors (for the command's stderr). `total` and
    `n_bad` count photos beyond `scores` (a streamed catalogue keeps only its first errors)."""
    bad = [s for s in scores if not s.ok]
    total = len(scores) if total is None else total
    n_bad = len(bad) if n_bad is None else n_bad
    line = f"scored {total - n_bad} of {total} photos"
    if n_bad:
        line += f"; {n_bad} not scored:\n" + "\n".join(f"  {s.path}: {s.error}" for s in bad[:20])
        if n_bad > 20:
            line += f"\n  ... and {n_bad - 20} more (see the error column)"
    return line
