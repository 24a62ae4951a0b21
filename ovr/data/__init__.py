"""Dataset building: sources -> ``Sample`` rows -> filters -> sharded parquet in the store, streamed.

- :mod:`ovr.data.registry` / :mod:`ovr.data.adapters`: one registered adapter per real source,
  mapping that source's own columns to :class:`ovr.schema.Sample`.
- :mod:`ovr.data.sources`: reads rows from ``datasets.save_to_disk`` folders, parquet, JSONL (local
  or ``s3://``).
- :mod:`ovr.data.synthetic`: procedural text and Pillow-drawn visual tasks with exact answers.
- :mod:`ovr.data.filters`, :mod:`ovr.data.mix`: verifiability, dedup, decontamination, pass-rate
  band, mixing weights, deterministic shuffling (list functions; the build's semantics).
- :mod:`ovr.data.build`: the linear build entry point, which streams rows through
  :mod:`ovr.data.stream` (adapt, check, filter, spool), :mod:`ovr.data.checks` +
  :mod:`ovr.data.workers` (verification in worker processes), :mod:`ovr.data.index` (bounded-memory
  dedup and decontamination indexes), :mod:`ovr.data.spool` (rows and drop records on disk) and
  :mod:`ovr.data.assemble` (mixing, shuffling and shards from the spools); :mod:`ovr.data.report`
  counts and shows progress. :mod:`ovr.data.reader`: the streaming reader.
"""
