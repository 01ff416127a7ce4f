"""import-vm against a real single-node VictoriaMetrics: the same samples as the promtool path in a
real Prometheus, a re-import refused, samples dropped by retention reported, clear one-line errors."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from exporter.backfill.blocks import backfill
from exporter.backfill.victoria import import_victoriametrics
from exporter.errors import StoreError
from tests.backfill.test_backfill_prometheus import history, server_with_blocks
from tests.backfill.timelines import SCALES, synthetic_timeline, write_timeline
from tests.support import VictoriaMetricsServer, free_port

START = dt.datetime(2024, 1, 1)
NOW = dt.datetime(2030, 1, 1)
ALL = '{__name__=~"openstack_usage_.+"}'


@pytest.fixture(scope="module")
def timeline_dir(tmp_path_factory):
    # 130 days: more than one 1458h import window; all five resources, counters up to ~1e17
    frame = synthetic_timeline(start=START, hours=24 * 130, node_types=("compute_skylake", "gpu_a100"),
                               resources=tuple(SCALES))
    return write_timeline(frame, tmp_path_factory.mktemp("timeline"))


def close(vm_points: list, prom_points: list) -> bool:
    """Same timestamps; values equal up to VictoriaMetrics' storage precision (decimal mantissa
    with one exponent per block: ~18 significant digits of the block's largest value)."""
    if [t for t, _ in vm_points] != [t for t, _ in prom_points]:
        return False
    scale = max(abs(v) for _, v in prom_points) or 1.0
    return all(abs(a - b) <= 1e-12 * scale for (_, a), (_, b) in zip(vm_points, prom_points))


@pytest.mark.victoriametrics
@pytest.mark.prometheus
def test_victoriametrics_holds_the_same_samples_as_prometheus_from_promtool(timeline_dir, tmp_path, promtool,
                                                                            victoria_bin):
    blocks = backfill(timeline_dir, tmp_path / "bf", blocks=True, promtool=promtool, now=NOW)
    with VictoriaMetricsServer(victoria_bin) as vm:
        result = import_victoriametrics(timeline_dir, vm.url, now=NOW)
        in_vm = vm.export(ALL)
    assert (result.samples, result.series, result.cutoff) == (blocks.samples, blocks.series, blocks.cutoff)
    assert result.requests == len(blocks.files) > 1  # one request per 1458h window, like the files
    with server_with_blocks(blocks, tmp_path, "127.0.0.1:9") as prometheus:
        in_prometheus = history(prometheus, blocks, ALL, 3600)
    assert len(in_prometheus) == 2 * blocks.series  # gauge + counter per series
    assert in_vm.keys() == in_prometheus.keys()
    assert sum(len(points) for points in in_vm.values()) == blocks.samples
    different = [labels for labels in in_vm if not close(in_vm[labels], in_prometheus[labels])]
    assert different == []
    exact = sum(in_vm[labels] == in_prometheus[labels] for labels in in_vm)
    assert exact >= len(in_vm) // 2  # gauges are small decimals: bit-identical


@pytest.mark.victoriametrics
def test_a_second_import_is_refused_before_anything_is_sent(timeline_dir, victoria_bin):
    with VictoriaMetricsServer(victoria_bin) as vm:
        first = import_victoriametrics(timeline_dir, vm.url, now=NOW)
        with pytest.raises(StoreError, match=f"already holds {first.samples:,} samples of these series"):
            import_victoriametrics(timeline_dir, vm.url, now=NOW)
        assert sum(len(points) for points in vm.export(ALL).values()) == first.samples


@pytest.mark.victoriametrics
def test_samples_older_than_the_retention_are_reported_not_lost_silently(timeline_dir, victoria_bin):
    with VictoriaMetricsServer(victoria_bin, retention="1") as vm:  # the default: one month
        with pytest.raises(StoreError, match=r"VictoriaMetrics kept \d[\d,]* of the [\d,]+ samples sent.*"
                                             r"-retentionPeriod"):
            import_victoriametrics(timeline_dir, vm.url, now=NOW)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_server_down_is_one_line(timeline_dir):
    url = f"http://127.0.0.1:{free_port()}"
    done = run_cli("import-vm", str(timeline_dir), "--url", url, "--quiet")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot reach VictoriaMetrics at {url}/api/v1/query: [Errno 111] Connection refused "
        "(is it running? a single node listens on :8428)"]


def test_cli_rejects_a_url_that_is_not_http(timeline_dir):
    done = run_cli("import-vm", str(timeline_dir), "--url", "127.0.0.1:8428", "--quiet")
    assert done.returncode == 2
    assert "is not an http(s) URL" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.victoriametrics
def test_cli_imports_and_says_so(timeline_dir, victoria_bin):
    with VictoriaMetricsServer(victoria_bin) as vm:
        done = run_cli("import-vm", str(timeline_dir), "--url", vm.url, "--quiet", "--holdback", "24h")
        assert done.returncode == 0, done.stderr
        assert "all counted back" in done.stdout
        assert max(t for points in vm.export(ALL).values() for t, _ in points) == \
            int((START + dt.timedelta(days=129) - dt.datetime(1970, 1, 1)).total_seconds()) - 3600


@pytest.mark.victoriametrics
def test_a_refused_request_is_one_line_with_the_servers_reason(timeline_dir, victoria_bin):
    with VictoriaMetricsServer(victoria_bin, extra_args=("-import.maxLineLen=1000",)) as vm:
        with pytest.raises(StoreError, match=r"^VictoriaMetrics refused the import of [\d,]+ bytes at "
                                             rf"{vm.url}/api/v1/import: HTTP 400 .*too long line") as raised:
            import_victoriametrics(timeline_dir, vm.url, now=NOW, workers=1)
    assert "\n" not in str(raised.value)
