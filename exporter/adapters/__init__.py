"""Domain adapters: one module per source family, each turning snapshot tables into spans.

Every adapter module declares ``READS`` (the tables and columns it needs, as
:class:`exporter.adapters.declared.SourceTable`); :mod:`exporter.adapters.registry` collects them.
Importing this package loads no adapter: modules that need one helper do not pay for all.
"""
