"""docker-compose.yml is checked statically (docker compose itself is not run here): every file it
mounts exists, every volume/config is declared, images are pinned, ports agree with
etc/prometheus.yml and the Grafana data source, and every `usage-exporter` command line in it is a
real subcommand whose options click accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from exporter.cli import cli
from exporter.config import load_config
from exporter.metrics import DEFAULT_INSTANCE, DEFAULT_JOB

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"mariadb", "seed", "backfill", "prometheus", "exporter", "grafana"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def unescape(text: str) -> str:
    """Compose turns ``$$`` into ``$`` before the container sees it."""
    return text.replace("$$", "$")


def bind_mounts(service: dict):
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        yield source, target


def test_services_and_pinned_images(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
            continue
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: image {image!r} is not pinned to a release"


def test_promtool_in_the_tool_image_matches_the_server(compose):
    """Blocks must come from a promtool no newer than the Prometheus that reads them."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM {compose['services']['prometheus']['image']} AS prometheus" in dockerfile
    assert "COPY --from=prometheus /bin/promtool /usr/local/bin/promtool" in dockerfile


def test_every_mounted_file_exists_and_every_volume_is_declared(compose):
    declared_volumes = set(compose["volumes"])
    used_volumes = set()
    for name, service in compose["services"].items():
        for source, _target in bind_mounts(service):
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                used_volumes.add(source)
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], name
    assert used_volumes == declared_volumes


def test_dockerfile_copies_existing_paths():
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def exporter_target() -> tuple[str, int]:
    shipped = yaml.safe_load((ROOT / "etc/prometheus.yml").read_text())
    [job] = [job for job in shipped["scrape_configs"] if job["job_name"] == DEFAULT_JOB]
    [target] = [t for static in job["static_configs"] for t in static["targets"]]
    assert {"target_label": "instance", "replacement": DEFAULT_INSTANCE}.items() <= job["relabel_configs"][0].items()
    host, port = target.rsplit(":", 1)
    return host, int(port)


def test_prometheus_scrapes_the_exporter_where_it_listens(compose):
    services = compose["services"]
    host, port = exporter_target()
    listen = services["exporter"]["command"][services["exporter"]["command"].index("--listen") + 1]
    assert int(listen.rsplit(":", 1)[1]) == port
    if host in ("localhost", "127.0.0.1"):
        # The shipped config scrapes localhost: the exporter must share Prometheus' network.
        assert services["exporter"]["network_mode"] == "service:prometheus"
        assert f"{port}:{port}" in services["prometheus"]["ports"]
    else:
        assert host == "exporter"
    mounts = dict(bind_mounts(services["prometheus"]))
    assert mounts["./etc/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    retention = [a for a in services["prometheus"]["command"] if a.startswith("--storage.tsdb.retention.time=")]
    assert retention and retention[0].endswith("y"), "backfilled years need a retention in years"


def test_grafana_gets_the_provisioned_datasource_and_dashboards(compose):
    grafana = compose["services"]["grafana"]
    mounts = dict(bind_mounts(grafana))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    providers = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/openstack-usage.yml").read_text())
    assert mounts["./grafana/dashboards"] == providers["providers"][0]["options"]["path"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "grafana/dashboards" / Path(home).name).is_file()
    assert home.startswith(mounts["./grafana/dashboards"])
    [source] = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_inline_sites_config_loads_with_the_pinned_labels(compose, tmp_path):
    path = tmp_path / "sites.yaml"
    path.write_text(unescape(compose["configs"]["sites"]["content"]))
    config = load_config(path, environ={"DEMO_DB_PASSWORD": "secret"})
    assert (config.job, config.instance) == (DEFAULT_JOB, DEFAULT_INSTANCE)
    assert config.site("demo").db_url == "mysql+pymysql://root:secret@mariadb:3306/"


def usage_exporter_commands(compose) -> list[tuple[str, list[str]]]:
    """(service, argv after `usage-exporter`) for every invocation in the stack."""
    found = []
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is None or "build" not in service:
            continue
        if service.get("entrypoint") is None:  # the image's entrypoint is usage-exporter
            found.append((name, list(command)))
            continue
        script = unescape("\n".join(command)).replace("\\\n", " ")
        for line in script.splitlines():
            words = shlex.split(line)
            if words and words[0] == "usage-exporter":
                found.append((name, words[1:]))
    return found


def test_every_usage_exporter_command_is_real(compose, tmp_path):
    commands = usage_exporter_commands(compose)
    assert {argv[0] for _, argv in commands} >= {"generate-site", "run", "serve"}
    for service, argv in commands:
        name, args = argv[0], []
        for arg in argv[1:]:
            arg = re.sub(r"^\$\(date .*\)$", "2016-11-21", arg)  # the seed's start date, computed by sh
            if arg.startswith("/data"):  # container paths: make them exist here, for click's checks
                arg = str(tmp_path / arg.lstrip("/"))
                Path(arg).mkdir(parents=True, exist_ok=True)
            args.append(arg)
        with click.Context(cli) as ctx:
            command = cli.get_command(ctx, name)
        assert command is not None, f"{service}: no subcommand {name!r}"
        try:
            command.make_context(name, args)
        except click.UsageError as err:
            pytest.fail(f"{service}: usage-exporter {' '.join(argv)}: {err.format_message()}")


def test_backfill_job_never_repeats_and_hands_blocks_to_prometheus(compose):
    backfill = compose["services"]["backfill"]
    script = unescape("\n".join(backfill["command"]))
    mounts = dict(bind_mounts(backfill))
    assert mounts["prometheus-data"] == "/prometheus"
    assert dict(bind_mounts(compose["services"]["prometheus"]))["prometheus-data"] == "/prometheus"
    assert "if [ -f /prometheus/.backfilled ]" in script.splitlines()[0]
    assert "cp -R /data/out/demo/backfill/blocks/. /prometheus/" in script
    assert "chown -R 65534:65534 /prometheus" in script  # prom/prometheus runs as nobody
    assert compose["services"]["prometheus"]["depends_on"]["backfill"]["condition"] == \
        "service_completed_successfully"
