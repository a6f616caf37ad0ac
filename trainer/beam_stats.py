"""TFDV baseline statistics on Apache Beam, for training data larger than one process.

:func:`trainer.baseline.tfdv_statistics` computes statistics of a pandas frame in memory;
:func:`beam_statistics` computes the same statistics with a Beam pipeline over files, on
any runner: ``runner`` and ``pipeline_options`` go to ``PipelineOptions`` unchanged, so
``runner="FlinkRunner", pipeline_options=["--flink_master=host:8081"]`` or Dataflow's
``--project/--region/--temp_location`` work as Beam documents them.

Inputs (chosen by suffix, or ``input_format``):

* CSV (``.csv``, ``.csv.gz``): decoded here, by the feature specs, not by TFDV's CSV
  decoder, which infers types and reads floats as 32-bit: numeric features become
  ``float64``, categorical ones strings, an empty cell is missing, and columns that are not
  features (``dteday``, ``casual``, ``registered``, ``cnt``) are dropped. ``row_filter``
  (e.g. :class:`YearFilter`) selects rows by their raw text first.
* Parquet (``.parquet``): the feature columns are read; numeric ones are cast to
  ``float64``, an empty string is missing as in CSV.
* TFRecord of ``tf.train.Example`` (``.tfrecord``, ``.tfrecord.gz``, ``.tfr``): through
  ``tfdv.generate_statistics_from_tfrecord``; ``float_list`` holds 32-bit floats, so numeric
  statistics describe ``float32`` values (see :func:`write_examples`).

Every path uses ``tfdv.StatsOptions`` with ``feature_allowlist`` = the feature names and
otherwise the defaults of the in-memory path, so both give the same statistics for the same
rows (floats equal to rounding). The result is read back from ``output_path`` (a TFRecord
file); by default a temporary file under the ``--temp_location`` pipeline option if given
(required on remote runners, e.g. ``gs://bucket/tmp``), else a local temporary directory.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Sequence, get_args

import apache_beam as beam
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow_data_validation as tfdv
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from tensorflow_metadata.proto.v0 import statistics_pb2

from monitor.errors import ConfigError, SchemaError
from monitor.schema import FeatureSpec
from trainer.baseline import feature_frame

__all__ = [
    "InputFormat",
    "YearFilter",
    "beam_statistics",
    "csv_header",
    "input_format_of",
    "make_pipeline_options",
    "stats_options_for",
    "write_examples",
]

log = logging.getLogger(__name__)

InputFormat = Literal["csv", "parquet", "tfrecord"]
_SUFFIXES: tuple[tuple[str, InputFormat], ...] = (
    (".csv", "csv"), (".csv.gz", "csv"), (".parquet", "parquet"),
    (".tfrecord", "tfrecord"), (".tfrecord.gz", "tfrecord"), (".tfr", "tfrecord"),
)
_BATCH_ROWS = 1000


def input_format_of(path: str) -> InputFormat:
    """The input format named by ``path``'s suffix (a glob's suffix counts)."""
    lower = str(path).lower()
    for suffix, fmt in sorted(_SUFFIXES, key=lambda s: -len(s[0])):
        if lower.endswith(suffix):
            return fmt
    raise ConfigError(
        f"cannot tell the format of {path!r}; name it *.csv, *.parquet or *.tfrecord, or pass input_format",
        field="input_format",
    )


def stats_options_for(specs: Sequence[FeatureSpec], base: tfdv.StatsOptions | None = None) -> tfdv.StatsOptions:
    """``base`` (default ``StatsOptions()``, as the in-memory path) restricted to the features."""
    if not specs:
        raise SchemaError("no feature specs given")
    options = base if base is not None else tfdv.StatsOptions()
    options.feature_allowlist = [s.name for s in specs]
    return options


def make_pipeline_options(runner: str, pipeline_options: Sequence[str] = ()) -> PipelineOptions:
    """``PipelineOptions(["--runner=<runner>", *pipeline_options])``; the flags are not interpreted here."""
    if not isinstance(runner, str) or not runner.strip():
        raise ConfigError(f"must be a Beam runner name, got {runner!r}", field="runner")
    if isinstance(pipeline_options, (str, bytes)) or not all(isinstance(o, str) for o in pipeline_options):
        raise ConfigError("must be a list of command-line flags such as ['--flink_master=host:8081']",
                          field="pipeline_options")
    for flag in pipeline_options:
        if flag == "--runner" or flag.startswith("--runner="):
            raise ConfigError(f"give the runner as runner=..., not in pipeline_options ({flag!r})",
                              field="pipeline_options")
    return PipelineOptions([f"--runner={runner.strip()}", *pipeline_options])


@dataclass(frozen=True)
class YearFilter:
    """Keeps CSV rows whose ``column`` (a ``YYYY-MM-DD`` date) falls in ``year``; picklable."""

    column: str
    year: int

    def __call__(self, row: Mapping[str, str]) -> bool:
        value = row.get(self.column)
        if value is None:
            raise SchemaError("the row filter's column is not in the CSV", feature=self.column)
        return value[:5] == f"{self.year:04d}-"


def _matched_files(pattern: str) -> list[str]:
    try:
        (result,) = FileSystems.match([pattern])
    except Exception as exc:  # Beam raises BeamIOError and friends
        raise ConfigError(f"cannot list {pattern!r}: {exc}", field="data_path") from None
    files = sorted(m.path for m in result.metadata_list)
    if not files:
        raise ConfigError(f"no file matches {pattern!r}", field="data_path")
    return files


def csv_header(pattern: str, delimiter: str = ",") -> list[str]:
    """The header row shared by every CSV file ``pattern`` matches (gzip by suffix)."""
    headers = {}
    for path in _matched_files(pattern):
        with FileSystems.open(path) as raw:
            first = raw.readline().decode("utf-8-sig").rstrip("\r\n")
        headers[path] = next(csv.reader([first], delimiter=delimiter), [])
    distinct = {tuple(h) for h in headers.values()}
    if len(distinct) != 1:
        raise SchemaError(f"the files matching {pattern!r} have different headers: {sorted(distinct)}")
    header = list(distinct.pop())
    if not header or len(set(header)) != len(header):
        raise SchemaError(f"bad CSV header {header!r} in {pattern!r}")
    return header


class _DecodeCsvLine(beam.DoFn):
    """A CSV line -> ``{column: raw text}``; a wrong number of fields raises SchemaError."""

    def __init__(self, header: Sequence[str], delimiter: str) -> None:
        self._header = list(header)
        self._delimiter = delimiter

    def process(self, line: str) -> Iterator[dict[str, str]]:
        if not line.strip():
            return
        fields = next(csv.reader([line], delimiter=self._delimiter))
        if len(fields) != len(self._header):
            raise SchemaError(f"CSV row has {len(fields)} fields, the header {len(self._header)}: {line[:200]!r}")
        yield dict(zip(self._header, fields))


def _number(text: str, feature: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SchemaError(f"not a number: {text[:50]!r}", feature=feature) from None
    if not math.isfinite(value):
        raise SchemaError(f"numeric value is not finite: {text!r}", feature=feature)
    return value


class _RowsToRecordBatch:
    """Raw CSV rows -> an Arrow RecordBatch of the features (list arrays, as TFDV wants)."""

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self._specs = tuple(specs)

    def __call__(self, rows: Sequence[Mapping[str, str]]) -> pa.RecordBatch:
        arrays = []
        for spec in self._specs:
            texts = [row[spec.name] for row in rows]
            if spec.kind == "numeric":
                values = [None if t == "" else [_number(t, spec.name)] for t in texts]
                arrays.append(pa.array(values, type=pa.list_(pa.float64())))
            else:
                arrays.append(pa.array([None if t == "" else [t] for t in texts], type=pa.list_(pa.string())))
        return pa.RecordBatch.from_arrays(arrays, [s.name for s in self._specs])


class _CanonicalParquetBatch:
    """A Parquet table -> RecordBatches of list arrays: numeric float64, "" missing."""

    def __init__(self, specs: Sequence[FeatureSpec]) -> None:
        self._specs = tuple(specs)

    def __call__(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
        for batch in table.to_batches():
            arrays = []
            for spec in self._specs:
                column = batch.column(batch.schema.get_field_index(spec.name))
                if spec.kind == "numeric":
                    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
                        raise SchemaError(f"Parquet column has type {column.type}, not a number", feature=spec.name)
                    column = pc.cast(column, pa.float64())
                else:
                    if pa.types.is_dictionary(column.type):
                        column = column.dictionary_decode()
                    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                        raise SchemaError(f"Parquet column has type {column.type}, not a string", feature=spec.name)
                    column = pc.cast(column, pa.string())
                    column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
                offsets = pa.array(range(len(column) + 1), type=pa.int32())
                listed = pa.ListArray.from_arrays(offsets, column)
                # a null value is a missing feature: a null list, not a list holding null
                mask = pc.is_null(column)
                arrays.append(pc.if_else(mask, pa.scalar(None, listed.type), listed))
            yield pa.RecordBatch.from_arrays(arrays, [s.name for s in self._specs])


def _check_parquet_columns(pattern: str, specs: Sequence[FeatureSpec]) -> None:
    import pyarrow.parquet as pq

    for path in _matched_files(pattern):
        with FileSystems.open(path) as handle:
            names = set(pq.read_schema(handle).names)
        for spec in specs:
            if spec.name not in names:
                raise SchemaError(f"Parquet file {path} lacks this feature column", feature=spec.name)


def _output_path(options: PipelineOptions, output_path: str | None) -> tuple[str, Callable[[], None]]:
    if output_path:
        return output_path, lambda: None
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    if temp_location:
        folder = FileSystems.join(temp_location, f"skewwatch-stats-{uuid.uuid4().hex}")
        return FileSystems.join(folder, "statistics.tfrecord"), lambda: FileSystems.delete([folder])
    folder = tempfile.mkdtemp(prefix="skewwatch-stats-")
    return os.path.join(folder, "statistics.tfrecord"), lambda: shutil.rmtree(folder, ignore_errors=True)


def beam_statistics(
    data_path: str | os.PathLike[str],
    specs: Sequence[FeatureSpec],
    *,
    runner: str = "DirectRunner",
    pipeline_options: Sequence[str] = (),
    input_format: InputFormat | None = None,
    row_filter: Callable[[Mapping[str, str]], bool] | None = None,
    stats_options: tfdv.StatsOptions | None = None,
    output_path: str | None = None,
    delimiter: str = ",",
) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the ``specs`` features of the files ``data_path`` matches (a glob).

    ``row_filter`` (CSV only) gets each row as ``{column: text}`` and keeps it when true; it
    must be picklable (a module-level class such as :class:`YearFilter`) on remote runners.
    Bad input (a non-number in a numeric column, a missing feature column, a row with the
    wrong number of fields) raises :class:`SchemaError` naming the feature.
    """
    pattern = os.fspath(data_path)
    fmt = input_format or input_format_of(pattern)
    if fmt not in get_args(InputFormat):
        raise ConfigError(f"must be one of {get_args(InputFormat)}, got {fmt!r}", field="input_format")
    if row_filter is not None and fmt != "csv":
        raise ConfigError("row_filter works on CSV input only", field="row_filter")
    options = make_pipeline_options(runner, pipeline_options)
    stats_opts = stats_options_for(specs, stats_options)
    out, cleanup = _output_path(options, output_path)
    log.info("TFDV statistics of %s (%s) on Beam %s", pattern, fmt, runner)
    try:
        if fmt == "tfrecord":
            _matched_files(pattern)
            return _unwrap(lambda: tfdv.generate_statistics_from_tfrecord(
                pattern, output_path=out, stats_options=stats_opts, pipeline_options=options))
        if fmt == "csv":
            header = csv_header(pattern, delimiter)
            for spec in specs:
                if spec.name not in header:
                    raise SchemaError(f"CSV header {header} lacks this feature", feature=spec.name)
        else:
            _check_parquet_columns(pattern, specs)

        def run() -> statistics_pb2.DatasetFeatureStatisticsList:
            with beam.Pipeline(options=options) as p:
                if fmt == "csv":
                    rows = (
                        p
                        | "ReadCsv" >> beam.io.ReadFromText(pattern, skip_header_lines=1)
                        | "DecodeCsv" >> beam.ParDo(_DecodeCsvLine(header, delimiter))
                    )
                    if row_filter is not None:
                        rows = rows | "FilterRows" >> beam.Filter(row_filter)
                    batches = (
                        rows
                        | "Batch" >> beam.BatchElements(min_batch_size=_BATCH_ROWS, max_batch_size=_BATCH_ROWS)
                        | "ToRecordBatch" >> beam.Map(_RowsToRecordBatch(specs))
                    )
                else:
                    batches = (
                        p
                        | "ReadParquet" >> beam.io.ReadFromParquetBatched(pattern, columns=[s.name for s in specs])
                        | "ToRecordBatch" >> beam.FlatMap(_CanonicalParquetBatch(specs))
                    )
                _ = (
                    batches
                    | "GenerateStatistics" >> tfdv.GenerateStatistics(stats_opts)
                    | "WriteStatistics" >> tfdv.WriteStatisticsToTFRecord(out)
                )
            return tfdv.load_statistics(out)

        return _unwrap(run)
    finally:
        cleanup()


def _unwrap(run: Callable[[], statistics_pb2.DatasetFeatureStatisticsList]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """Run the pipeline; a SchemaError raised in a worker comes back with its ``feature``.

    Beam re-raises a worker's exception as a copy with a longer message and no other
    attributes; the original is in the chain of causes.
    """
    try:
        return run()
    except Exception as exc:
        original, cause, seen = None, exc, set()
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, SchemaError):
                original = cause
            cause = cause.__cause__ or cause.__context__
        if original is None or original is exc:
            raise
        error = SchemaError.__new__(SchemaError)
        Exception.__init__(error, *original.args)
        error.feature, error.instance = original.feature, original.instance
        raise error from exc


def write_examples(df: pd.DataFrame, specs: Sequence[FeatureSpec], path: str | os.PathLike[str]) -> int:
    """Write the ``specs`` features of ``df`` as ``tf.train.Example`` records; return the count.

    Numeric features go to ``float_list`` (32-bit floats), categorical ones to
    ``bytes_list`` (UTF-8); a missing value leaves the feature out of that example.
    """
    import tensorflow as tf

    frame = feature_frame(df, specs)
    columns: list[tuple[FeatureSpec, Iterable[Any]]] = [(s, frame[s.name].tolist()) for s in specs]
    count = 0
    with tf.io.TFRecordWriter(os.fspath(path)) as writer:
        for values in zip(*(c for _, c in columns)):
            feature = {}
            for (spec, _), value in zip(columns, values):
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                if spec.kind == "numeric":
                    feature[spec.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[spec.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            count += 1
    return count
