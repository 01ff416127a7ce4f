"""Grafana dashboards as code: ``render_dashboards(config)`` builds the provisioning JSON of every
dashboard with Grafana's typed builders (``grafana-foundation-sdk``, the ``dashboards`` extra), so
the site colours of ``etc/sites.yaml`` reach Grafana. The shipped ``grafana/dashboards/*.json`` are
``usage-exporter dashboards --config etc/sites.yaml`` output; a test checks they match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from exporter.colours import detected_for, site_colours
from exporter.config import Config
from exporter.errors import ToolMissing

INSTALL_HINT = "generating dashboards needs grafana-foundation-sdk: pip install 'openstack-usage-exporter[dashboards]'"


def build_dashboards(config: Config) -> dict[str, dict]:
    """{file stem: dashboard JSON object} for ``config``."""
    try:
        from grafana_foundation_sdk.cog.encoder import JSONEncoder
    except ImportError:
        raise ToolMissing(INSTALL_HINT) from None
    from exporter.dashboards.boards import cross_site, site_usage
    from exporter.dashboards.report_boards import exporter_health, node_hours

    detected = detected_for(config)
    edge = "edge" in {*detected.values(), *(config.site(name, resolve_env=False).kind for name in config.site_names)}
    boards = {"site-usage": site_usage(edge), "cross-site": cross_site(site_colours(config, detected=detected)),
              "node-hours": node_hours(), "exporter-health": exporter_health(config.job)}
    return {name: json.loads(JSONEncoder().encode(board.build())) for name, board in boards.items()}


def render_dashboards(config: Config) -> dict[str, str]:
    """{file name: text}: sorted keys and a final newline, so equal configs give equal bytes."""
    return {f"{name}.json": json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            for name, board in build_dashboards(config).items()}


@dataclass(frozen=True)
class DashboardsResult:
    paths: tuple[Path, ...]
    colours: dict[str, str]


def write_dashboards(config: Config, out_dir: str | Path) -> DashboardsResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_dashboards(config).items():
        (out / name).write_text(text)
        paths.append(out / name)
    return DashboardsResult(paths=tuple(paths), colours=site_colours(config, detected=detected_for(config)))
