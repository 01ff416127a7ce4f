"""Generic interval and time-series math: unions and clips of intervals, the sweepline of
+/- changes and the time-weighted resample. Nothing here knows about OpenStack; the rules that
decide which intervals exist live in ``exporter.adapters`` and ``exporter.reconstruct``."""
