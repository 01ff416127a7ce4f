"""import-vm against a real single-node VictoriaMetrics: the same samples as the promtool path in a
real Prometheus (the timeline's families and the extra ones: devices, booked ahead, lead times), a
re-import refused, samples dropped by retention reported, clear one-line errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import struct
import subprocess
import sys
import threading

import polars as pl
import pytest

from exporter.backfill.blocks import backfill
from exporter.backfill.victoria import import_victoriametrics
from exporter.config import SiteConfig
from exporter.errors import StoreError
from exporter.extract.copy import extract_snapshot
from exporter.layout import family_file
from exporter.metrics import DEVICE_SECONDS, DEVICES, EXTRA_FAMILIES
from exporter.reconstruct.pipeline import ReconstructOptions, reconstruct_to_directory
from exporter.sitegen import generate_site
from tests.backfill.test_backfill_prometheus import epoch, history, server_with_blocks
from tests.backfill.test_families import THINGS, TICKS, things
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
def test_a_refused_request_is_one_line_with_the_servers_reason(tmp_path, victoria_bin):
    # A request small enough that the server reads it whole before it answers: a larger one it
    # answers mid-body and closes, which may reset the connection before the answer can be read
    # (test_a_connection_closed_mid_import_..., seen under load with the 2 MB import of timeline_dir).
    small = write_timeline(synthetic_timeline(start=START, hours=240, node_types=("compute_skylake",),
                                              resources=("nodes",)), tmp_path / "tl")
    with VictoriaMetricsServer(victoria_bin, extra_args=("-import.maxLineLen=1000",)) as vm:
        with pytest.raises(StoreError, match=r"^VictoriaMetrics refused the import of [\d,]+ bytes at "
                                             rf"{vm.url}/api/v1/import: HTTP 400 .*too long line") as raised:
            import_victoriametrics(small, vm.url, now=NOW, workers=1)
    assert "\n" not in str(raised.value)


def test_a_connection_closed_mid_import_is_one_line_not_a_server_down(timeline_dir):
    # A server that answers the count query, then drops the import after its first read with a
    # reset (what a real server's early answer to a large bad request can turn into): the error says
    # the server closed the connection, not that it cannot be reached.
    with resetting_server() as url:
        with pytest.raises(StoreError, match=r"^VictoriaMetrics closed the connection during the import of "
                                             rf"[\d,]+ bytes at {url}/api/v1/import: .*(reset|[Bb]roken pipe)") as raised:
            import_victoriametrics(timeline_dir, url, now=NOW, workers=1)
    assert "\n" not in str(raised.value)


@contextlib.contextmanager
def resetting_server():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # so the loop sees stop soon: closing a socket does not wake accept()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                head = connection.recv(65536)
                if head.startswith(b"GET"):
                    body = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                else:  # the import: close with unread data and no linger, i.e. a reset
                    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# --- the extra series families (devices, booked ahead, lead times, ...): the same samples too --------

def raw_samples(prometheus, selector: str, first: int, last: int) -> dict:
    """Every stored sample of ``selector`` in [first, last]: {sorted label items: [(t, value), ...]}."""
    data = prometheus.api("query", query=f"{selector}[{last - first + 1}s]", time=last)
    return {tuple(sorted(s["metric"].items())): [(int(float(t)), float(v)) for t, v in s["values"]]
            for s in data["result"]}


def same_samples_in_both(timeline_dir, tmp_path, promtool, victoria_bin, *, now, declared=EXTRA_FAMILIES,
                         holdback=dt.timedelta(hours=3)) -> tuple[dict, dict]:
    """Backfill through promtool into a real Prometheus and import-vm into a real VictoriaMetrics;
    both results agree, and every series holds the same samples in both stores. Returns
    (the import's families, the series in VictoriaMetrics)."""
    tmp_path = tmp_path / "stores"
    tmp_path.mkdir()
    blocks = backfill(timeline_dir, tmp_path / "bf", blocks=True, promtool=promtool, now=now, holdback=holdback,
                      declared=declared)
    with VictoriaMetricsServer(victoria_bin) as vm:
        result = import_victoriametrics(timeline_dir, vm.url, now=now, holdback=holdback, declared=declared)
        in_vm = vm.export(ALL)
    assert (result.samples, result.series, result.cutoff, result.families) == \
        (blocks.samples, blocks.series, blocks.cutoff, blocks.families)
    assert (result.first_sample, result.last_sample) == (blocks.first_sample, blocks.last_sample)
    with server_with_blocks(blocks, tmp_path, "127.0.0.1:9") as prometheus:
        in_prometheus = raw_samples(prometheus, ALL, epoch(blocks.first_sample), epoch(blocks.last_sample))
    assert in_vm.keys() == in_prometheus.keys()
    assert sum(len(points) for points in in_vm.values()) == \
        blocks.samples + sum(counts["samples"] for counts in blocks.families.values())
    assert [labels for labels in in_vm if not close(in_vm[labels], in_prometheus[labels])] == []
    return result.families, in_vm


@pytest.mark.victoriametrics
@pytest.mark.prometheus
@pytest.mark.parametrize("nodes", [True, False], ids=["with-timeline", "families-only"])
def test_extra_families_are_imported_as_the_promtool_path_writes_them(tmp_path, promtool, victoria_bin, nodes):
    """A gauge and a counter family with label values to escape, beside a timeline or alone (an
    edge site without Nova)."""
    timeline = synthetic_timeline(start=START, hours=48, node_types=("gpu",), resources=("nodes",))
    timeline_dir = write_timeline(timeline if nodes else timeline.clear(), tmp_path / "timeline")
    family_file(timeline_dir, THINGS.name).parent.mkdir()
    things(48).write_parquet(family_file(timeline_dir, THINGS.name))
    hours = [START + dt.timedelta(hours=h) for h in range(48)]
    pl.DataFrame({"site": "uc", "device": 'd"1\\', "kind": "a\nb", "timestamp": hours,
                  "value": [7.5 * h for h in range(48)]}).write_parquet(family_file(timeline_dir, TICKS.name))
    families, in_vm = same_samples_in_both(timeline_dir, tmp_path, promtool, victoria_bin, now=NOW,
                                           declared=(THINGS, TICKS))
    assert families == {THINGS.name: {"series": 2, "samples": 90}, TICKS.name: {"series": 1, "samples": 45}}
    ticks = {labels: points for labels, points in in_vm.items() if dict(labels)["__name__"] == TICKS.sample_name}
    [(labels, points)] = ticks.items()
    assert (dict(labels)["device"], dict(labels)["kind"]) == ('d"1\\', "a\nb")  # the raw label values
    assert points == [(epoch(hour), 7.5 * h) for h, hour in enumerate(hours[:45])]  # cut-off: 3h holdback
    assert any(dict(labels)["__name__"] == "openstack_usage_nodes" for labels in in_vm) == nodes


@pytest.mark.victoriametrics
@pytest.mark.prometheus
def test_a_generated_edge_site_imports_its_device_families(tmp_path, promtool, victoria_bin):
    """The real reconstruct output of a CHI@Edge site (no Nova: only its families): devices and
    device-seconds, and whatever other family it writes, are in VictoriaMetrics as in Prometheus."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    start = (now - dt.timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    generated = generate_site(f"sqlite:///{tmp_path}/edge.sqlite", hosts=6, years=10 / 365, seed=3, start=start,
                              truth_dir=tmp_path / "truth", kind="edge", quirks=set())
    site = SiteConfig(name="edge", display_name="edge", db_url=generated.url, databases=generated.databases,
                      kind="edge", history_start=start)
    snapshot = extract_snapshot(site, tmp_path / "data", snapshot_id="s").snapshot_dir
    reconstruct_to_directory(snapshot, ReconstructOptions(site="edge", start=start), tmp_path / "out")
    families, in_vm = same_samples_in_both(tmp_path / "out", tmp_path, promtool, victoria_bin, now=now)
    assert {DEVICES.name, DEVICE_SECONDS.name} <= families.keys()
    names = {dict(labels)["__name__"] for labels in in_vm}
    assert {DEVICES.name, DEVICE_SECONDS.sample_name} <= names and "openstack_usage_nodes" not in names
    counters = [points for labels, points in in_vm.items() if dict(labels)["__name__"] == DEVICE_SECONDS.sample_name]
    assert all(b >= a for points in counters for (_, a), (_, b) in zip(points, points[1:]))
