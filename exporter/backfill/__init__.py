"""Stage 3: a reconstructed timeline -> OpenMetrics files (``openmetrics``) -> promtool TSDB
blocks (``blocks``), and the summary and next steps printed afterwards (``report``)."""
