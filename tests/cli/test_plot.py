"""`usage-exporter plot`: tables hold hand-computable numbers; figures render to PNG without
touching matplotlib's global state; without matplotlib the command says how to install it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from exporter.cli import cli
from exporter.errors import TimelineError
from exporter.plot import (STATE_COLOURS, bucket_means, bucket_utilization, leaf_name, state_table,
                           utilization_table)
from exporter.columns import TIMELINE_SCHEMA, conform

START = dt.datetime(2024, 1, 1)
HOURS = 24 * 40


def tiny_timeline(hours: int = HOURS) -> pl.DataFrame:
    """Two sites, hourly. Site a: 10 reservable nodes of which 4 committed (2 active, 1 stopped,
    1 idle) in even hours and none in odd hours, plus 2 on-demand nodes (1 active) and 3 nodes of
    unknown pool. Site b:
    5 reservable nodes, always 5 committed-active, in two node types (3 + 2)."""
    rows = []
    for hour in range(hours):
        t = START + dt.timedelta(hours=hour)
        even = hour % 2 == 0
        a = {("reservable", "available"): 6 if even else 10, ("reservable", "active"): 2 if even else 0,
             ("reservable", "stopped"): 1 if even else 0, ("reservable", "idle"): 1 if even else 0,
             ("reservable", "maintenance"): 0, ("ondemand", "available"): 1, ("ondemand", "active"): 1,
             ("unknown", "available"): 3}
        rows += [("a", t, "compute", pool, state, value) for (pool, state), value in a.items()]
        rows += [("b", t, "gpu", "reservable", "active", 3.0), ("b", t, "cpu", "reservable", "active", 2.0)]
    frame = pl.DataFrame(rows, schema=["site", "timestamp", "node_type", "pool", "state", "value"], orient="row")
    both = pl.concat([frame.with_columns(resource=pl.lit("nodes")),
                      frame.with_columns(resource=pl.lit("vcpus"), value=pl.col("value") * 48)])
    return conform(both, TIMELINE_SCHEMA)


def test_state_table_stacks_to_the_total():
    table = state_table(tiny_timeline(), site="a")
    leaves = [leaf_name(*key) for key in STATE_COLOURS]
    assert table.columns == ["timestamp", *leaves, "total", "reservable"]
    assert table.height == HOURS
    assert table["total"].unique().to_list() == [15.0]
    assert table["reservable"].unique().to_list() == [10.0]
    # the unknown pool is its own layer, in a neutral colour no other leaf uses
    assert table[leaf_name("unknown", "available")].unique().to_list() == [3.0]
    assert list(STATE_COLOURS.values()).count(STATE_COLOURS[("unknown", "available")]) == 1
    assert table[leaf_name("ondemand", "stopped")].unique().to_list() == [0.0]  # absent leaf -> zeros


def test_utilization_ratios_and_30_day_mean_by_hand():
    table = utilization_table(tiny_timeline(), resource="vcpus")
    site_a = table.filter(pl.col("site") == "a")
    assert site_a["committed_ratio"].to_list()[:2] == [0.4, 0.0]
    assert site_a["occupied_ratio"].to_list()[:2] == [0.3, 0.0]
    assert site_a["active_ratio"].to_list()[:2] == [0.2, 0.0]
    # After 30 days the trailing window holds 720 hours, half of them at 40 %: the mean is 20 %.
    late = site_a.filter(pl.col("timestamp") >= START + dt.timedelta(days=31))
    assert late["committed_rolling"].to_list() == pytest.approx([0.2] * late.height)
    site_b = table.filter(pl.col("site") == "b")
    assert site_b["committed_rolling"].unique().to_list() == [1.0]


def test_long_histories_are_drawn_as_bucket_means_that_still_stack():
    leaves = [leaf_name(*key) for key in STATE_COLOURS]
    buckets = bucket_means(state_table(tiny_timeline(), site="a"), points=10)
    assert 10 <= buckets.height <= 11  # 960 h in 96 h buckets
    assert buckets.select(pl.sum_horizontal(leaves) - pl.col("total")).to_series().abs().max() < 1e-9
    assert buckets["reservable · active"].to_list() == pytest.approx([1.0] * buckets.height)
    ratios = bucket_utilization(utilization_table(tiny_timeline()), points=10).filter(pl.col("site") == "a")
    assert ratios["committed_ratio"].to_list() == pytest.approx([0.2] * ratios.height)  # 48 h at 40 %, 48 at 0


def test_unknown_site_or_resource_is_a_clear_error():
    with pytest.raises(TimelineError, match="no nodes rows for site"):
        state_table(tiny_timeline(), site="nowhere")
    with pytest.raises(TimelineError, match="unknown resource"):
        utilization_table(tiny_timeline(), resource="bananas")


def test_render_plots_writes_pngs_without_touching_global_state(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from exporter.plot import cross_site_figure, render_plots, site_usage_figure

    before = dict(matplotlib.rcParams)
    timeline_dir = tmp_path / "timeline"
    timeline_dir.mkdir()
    tiny_timeline().write_parquet(timeline_dir / "timeline.parquet")
    result = render_plots((timeline_dir,), tmp_path / "png", dpi=60)
    names = sorted(path.name for path in result.paths)
    assert names == ["a-usage.png", "a-utilization.png", "b-usage.png", "b-utilization.png", "cross-site.png"]
    for path in result.paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    figure = site_usage_figure(tiny_timeline(), site="a")
    assert type(figure).__name__ == "Figure"
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert "reservable · maintenance" not in legend  # empty states stay out of the legend
    assert {"total capacity", "reservable pool", "reservable · active"} <= set(legend)
    assert len(cross_site_figure(tiny_timeline()).axes) == 2
    assert dict(matplotlib.rcParams) == before
    import matplotlib.pyplot as plt  # noqa: PLC0415 - only to check no figure was left open in pyplot
    assert plt.get_fignums() == []


def test_plot_command_end_to_end(tmp_path):
    pytest.importorskip("matplotlib")
    tiny_timeline().write_parquet(tmp_path / "timeline.parquet")
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["plot", str(tmp_path), "--site", "b", "--out", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["b-usage.png", "b-utilization.png"]


def test_without_matplotlib_one_line_says_how_to_install(tmp_path):
    tiny_timeline().write_parquet(tmp_path / "timeline.parquet")
    block = "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None; "
    run = "from exporter.cli import main; main(['plot', sys.argv[1], '--out', sys.argv[2]])"
    proc = subprocess.run([sys.executable, "-c", block + run, str(tmp_path), str(tmp_path / "png")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: plotting needs matplotlib: pip install 'openstack-usage-exporter[plot]'"]
    assert not (tmp_path / "png").exists()


def test_cross_site_figure_draws_each_site_in_its_configured_colour(tmp_path):
    """Three sites, one of them KVM: three distinct colours, the KVM one yellow, as the dashboards."""
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    from exporter.colours import KVM_PALETTE, site_colours
    from exporter.config import load_config
    from exporter.plot import cross_site_figure

    config_path = tmp_path / "sites.yaml"
    config_path.write_text("sites:\n  a: {db_url: 'sqlite:///a'}\n  b: {db_url: 'sqlite:///b'}\n"
                           "  kvm: {db_url: 'sqlite:///k', hypervisor: kvm}\n")
    config = load_config(config_path)
    three = pl.concat([tiny_timeline(48), tiny_timeline(48).filter(pl.col("site") == "b")
                       .with_columns(pl.lit("kvm").cast(pl.Categorical).alias("site"))], how="vertical_relaxed")
    figure = cross_site_figure(three, config=config)
    drawn = {collection.get_label(): to_hex(collection.get_facecolor()[0], keep_alpha=False)
             for collection in figure.axes[0].collections}
    assert drawn == site_colours(config) and drawn["kvm"] == KVM_PALETTE[0]
    assert len(set(drawn.values())) == 3


def test_lens_tables_by_hand():
    from exporter.plot_lenses import booked_ahead_table, leadtime_points

    hour = dt.timedelta(hours=1)
    leadtimes = pl.DataFrame({"site": ["a", "a", "b"], "created_at": [START, START + hour, START],
                              "requested_lead_time": [2 * hour, 30 * dt.timedelta(minutes=1), hour],
                              "effective_lead_time": [3 * hour, None, hour]})
    points = leadtime_points(leadtimes, site="a")
    assert points.rows() == [(START, "requested", 2.0), (START + hour, "requested", 0.5), (START, "effective", 3.0)]
    booked = pl.DataFrame({"site": ["a"] * 4, "node_type": ["x", "y", "x", "x"], "horizon": ["1d", "1d", "7d", "1d"],
                           "timestamp": [START, START, START, START + hour], "value": [1.0, 2.0, 0.5, 4.0]})
    assert booked_ahead_table(booked, site="a").rows() == [(START, 3.0, 0.5), (START + hour, 4.0, 0.0)]


def test_an_edge_site_is_plotted_from_its_device_timeline(tmp_path):
    """An edge site's timeline has no rows; its devices (device_timeline.parquet beside it) are its
    nodes in the figures, beside the other sites, and count in the cross-site figure."""
    pytest.importorskip("matplotlib")
    from exporter.plot import render_plots

    hosts, edge = tmp_path / "hosts", tmp_path / "edge"
    hosts.mkdir(), edge.mkdir()
    tiny_timeline().write_parquet(hosts / "timeline.parquet")
    tiny_timeline().clear().write_parquet(edge / "timeline.parquet")
    devices = tiny_timeline().filter((pl.col("site") == "b") & (pl.col("resource") == "nodes"))
    devices.with_columns(pl.lit("e").cast(devices.schema["site"]).alias("site")).write_parquet(
        edge / "device_timeline.parquet")
    names = sorted(path.name for path in render_plots((hosts, edge), tmp_path / "png", dpi=40).paths)
    assert names == ["a-usage.png", "a-utilization.png", "b-usage.png", "b-utilization.png", "cross-site.png",
                     "e-usage.png", "e-utilization.png"]
    vcpus = render_plots((hosts, edge), tmp_path / "vcpus", resource="vcpus", dpi=40).paths
    assert "e-usage.png" not in {path.name for path in vcpus}  # devices are counted in nodes only
