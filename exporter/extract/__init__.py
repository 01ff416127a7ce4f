"""Stage 1: copy the tables the adapters declare from a site's databases into a dated parquet
snapshot (``copy``), reading them in typed batches (``tableread``). Where a snapshot lives and
what its manifest vouches for are owned by ``exporter.layout`` and ``exporter.snapshots``."""
