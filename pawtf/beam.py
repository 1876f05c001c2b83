"""Catalogue scoring beyond one machine: Apache Beam's `RunInference` on an exported SavedModel.

``pawtf predict --beam`` builds a Beam pipeline: the photo paths -> `RunInference` with
:class:`SavedModelHandler` (each worker loads the export once and scores batches through its
``serving_default`` signature, exactly what TF Serving computes) -> CSV lines -> sharded text files. The
DirectRunner runs it here; ``--beam-options "--runner=DataflowRunner --project=... --region=..."`` (or
Flink, Spark) runs it elsewhere, where the workers can read the export and the photos.

Beam's own TensorFlow handler (``TFModelHandlerTensor``) cannot be used: it loads with
``tf.keras.models.load_model``, which in Keras 3 reads only ``.keras`` files, not a SavedModel, and it
needs ``tensorflow_hub``. :class:`SavedModelHandler` is Beam's documented extension point instead
(a `ModelHandler` subclass) over pawtf's own SavedModel scorer, so a bad photo gets its error and the
rest of its batch is scored.

Apache Beam is an optional extra, best installed in its own environment (``pip install -e ".[beam]"``):
apache-beam 2.77 pins Pillow < 13 (and protobuf < 7, pyarrow < 26), and Pillow 12 decodes EXIF-rotated
JPEGs and low-bit PNGs differently from the Pillow 13 the in-graph decoder matches, which the training
reader's checks notice. The scores of this pipeline do not depend on Pillow: the SavedModel decodes
in-graph.

Example:

>>> predict_beam("saved_models/demo", ["photos/"], "out/scores")   # doctest: +SKIP
['out/scores-00000-of-00001.csv']
"""

from __future__ import annotations

import csv
import io
import shlex
from pathlib import Path
from typing import Iterable, Sequence

from pawtf.predict import collect_photos, csv_row, flags_of, in_shard
from pawtf.scorers import Score

try:
    from apache_beam.ml.inference.base import ModelHandler
except ImportError:  # an optional extra: predict_beam says how to install it
    ModelHandler = object

__all__ = ["SavedModelHandler", "predict_beam"]

INSTALL = "pawtf predict --beam needs Apache Beam: pip install -e \".[beam]\" (or pip install apache-beam)"


class SavedModelHandler(ModelHandler):
    """A Beam `ModelHandler`: photo paths -> `pawtf.scorers.Score`, through an exported SavedModel.

    Args:
        version_dir: the export's version folder (``saved_models/NAME/<N>``).
        metadata: Id -> the 12 flags (`pawtf.data.photos.read_flags`), for models that take them.
        batch_size: the most photos a batch.
    """

    def __init__(self, version_dir: str | Path, metadata: dict | None = None, batch_size: int = 32):
        if ModelHandler is object:
            raise ImportError(INSTALL)
        super().__init__(min_batch_size=1, max_batch_size=batch_size)
        self.version_dir, self.metadata = str(version_dir), metadata

    def load_model(self):
        from pawtf.scorers import SavedModelScorer

        return SavedModelScorer(self.version_dir)

    def run_inference(self, batch: Sequence[str], model, inference_args=None) -> list[Score]:
        results = [Score(path) for path in batch]
        flags = flags_of(results, model, self.metadata)
        ok = [i for i, r in enumerate(results) if r.ok]
        if ok:
            scored = model.score_files([results[i].path for i in ok], None if flags is None else flags[ok])
            for i, score in zip(ok, scored):
                results[i] = score
        return results

    def get_metrics_namespace(self) -> str:
        return "pawtf"


def _csv_line(score: Score, header: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(csv_row(score, header))
    return buffer.getvalue()


def predict_beam(model: str | Path, inputs: Iterable[str | Path], out: str | Path, metadata=None, *,
                 shard: tuple[int, int] | None = None, batch_size: int = 32,
                 beam_options: str | Sequence[str] = ()) -> list[str]:
    """Score the photos of `inputs` with the exported SavedModel `model` in a Beam pipeline.

    Args:
        model: an export: a version folder, or a folder of integer versions (the latest is used).
        inputs: photos and folders of photos (read where the pipeline runs).
        out: the output prefix: the CSV shards are ``<out>-00000-of-0000N.csv`` (rows in no set order;
            columns as ``pawtf predict`` writes them).
        metadata: a flags CSV (Id + the 12 flags), for models that take them.
        shard: ``(i, n)``: only shard i of n of the photos (`pawtf.predict.in_shard`).
        batch_size: the most photos a `RunInference` batch.
        beam_options: Beam pipeline options (a string or a list), e.g. ``--runner=DataflowRunner ...``;
            default: the DirectRunner.

    Returns:
        The CSV files written.

    Raises:
        ImportError: Apache Beam is not installed.
        ValueError: `model` is not an export (a run folder must be exported first).
    """
    if ModelHandler is object:
        raise ImportError(INSTALL)
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from pawtf.data.photos import read_flags
    from pawtf.scorers import latest_version

    model = Path(model)
    if (model / "config.json").is_file():
        raise ValueError(f"{model} is a run folder; --beam scores with an export: pawtf export {model}, "
                         "then give its saved_models/NAME folder")
    version = model if (model / "saved_model.pb").is_file() else latest_version(model)
    photos = [r for r in collect_photos(inputs) if in_shard(r.path, shard)]
    missing, paths = [r for r in photos if not r.ok], [r.path for r in photos if r.ok]
    handler = SavedModelHandler(version, read_flags(metadata) if metadata is not None else None, batch_size)
    # The columns: what the model predicts besides the score, from its first photos scored here.
    probe = [s for s in handler.run_inference(paths[:8], handler.load_model()) if s.ok]
    header = ["path", "score", *(probe[0].extra if probe else {}), "error"]
    options = PipelineOptions(shlex.split(beam_options) if isinstance(beam_options, str) else list(beam_options))
    with beam.Pipeline(options=options) as pipeline:
        scored = pipeline | "photos" >> beam.Create(paths) | "score" >> RunInference(handler)
        failed = pipeline | "missing" >> beam.Create(missing)
        ((scored, failed) | beam.Flatten() | "csv" >> beam.Map(_csv_line, header)
         | beam.io.WriteToText(str(out), file_name_suffix=".csv", header=",".join(header)))
    out = Path(out)
    return sorted(str(p) for p in out.parent.glob(out.name + "-*-of-*.csv"))
