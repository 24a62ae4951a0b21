"""Dataset building: sources -> ``Sample`` rows -> filters -> sharded parquet in the store.

- :mod:`ovr.data.registry` / :mod:`ovr.data.adapters`: one registered adapter per real source,
  mapping that source's own columns to :class:`ovr.schema.Sample`.
- :mod:`ovr.data.sources`: reads rows from ``datasets.save_to_disk`` folders, parquet, JSONL (local
  or ``s3://``).
- :mod:`ovr.data.synthetic`: procedural text and Pillow-drawn visual tasks with exact answers.
- :mod:`ovr.data.filters`, :mod:`ovr.data.mix`: verifiability, dedup, decontamination, pass-rate
  band, mixing weights, deterministic shuffling.
- :mod:`ovr.data.build`: the linear build entry point; :mod:`ovr.data.reader`: the streaming reader.
"""
