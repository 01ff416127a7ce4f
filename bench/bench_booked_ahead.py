"""The booked-ahead lens (reconstruct.bookings.booked_ahead) on a large synthetic booking set: 300,000
allocations over ten years, 20 node types, hourly grid, horizons 1d/7d/30d; prints wall time and rows.

    .venv/bin/python bench/bench_booked_ahead.py
"""
import datetime as dt
import random
import time

import polars as pl

from exporter.reconstruct.bookings import booked_ahead
rng = random.Random(1)
D = dt.datetime(2016, 1, 1)
n = 300_000
types = [f"type{i}" for i in range(20)]
rows = {"site": ["s"] * n, "node_type": [rng.choice(types) for _ in range(n)]}
kf = [D + dt.timedelta(seconds=rng.randrange(0, 86400 * 3650)) for _ in range(n)]
st = [k + dt.timedelta(seconds=rng.choice([60, 60, 60, 86400 * rng.random() * 14])) for k in kf]
en = [s + dt.timedelta(hours=rng.randint(2, 168)) for s in st]
ku = [e + dt.timedelta(seconds=60) if rng.random() < 0.9 else k + dt.timedelta(hours=1) for k, e in zip(kf, en)]
frame = pl.DataFrame({**rows, "start": st, "end": en, "known_from": kf, "known_until": ku,
                      **{r: [1.0] * n for r in ("nodes", "vcpus", "memory_mb", "disk_gb", "gpus")}})
grid = [D + dt.timedelta(hours=h) for h in range(24 * 3650)]
for _ in range(2):
    t = time.perf_counter(); out = booked_ahead(frame, grid); print(f"{time.perf_counter()-t:.1f} s, {out.height} rows")
