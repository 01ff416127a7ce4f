"""Manual rules on a generated site, through the real CLI with a real rules file."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest
from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.sitegen import generate_site

START = dt.datetime(2023, 1, 1)
CUT_FROM, CUT_TO = dt.datetime(2023, 3, 1), dt.datetime(2023, 4, 1)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules-site")
    site = generate_site(f"sqlite:///{root}/site.sqlite", hosts=6, years=0.5, seed=5, start=START,
                         truth_dir=root / "truth")
    config = SiteConfig(name="chi", display_name="chi", db_url=site.url, databases=site.databases)
    return extract_snapshot(config, root / "snapshots", snapshot_id="s").snapshot_dir, site


def reconstruct(snapshot_dir, out, *extra: str) -> subprocess.CompletedProcess:
    """``usage-exporter reconstruct`` as a user runs it (errors: one line on stderr)."""
    return subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "reconstruct",
                           str(snapshot_dir), "--site", "chi", "--out", str(out), "--from", START.isoformat(),
                           "--quiet", *extra], capture_output=True, text=True, check=False)


def hours_in(spans: pl.DataFrame, lo: dt.datetime, hi: dt.datetime, snapshot: dt.datetime) -> float:
    start = pl.max_horizontal(pl.col("start"), pl.lit(lo))
    end = pl.min_horizontal(pl.col("end").fill_null(pl.lit(snapshot)), pl.lit(hi))
    hours = ((end - start).dt.total_seconds(fractional=True) / 3600).clip(lower_bound=0.0)
    return float(spans.select((hours * pl.col("nodes")).sum()).item())


def write_rules(path, host: str, action_lines: str) -> None:
    path.write_text(f"""rules:
  - id: rack-4-never-cabled
    site: chi
    match: {{hypervisor_hostname: {host}}}
    from: {CUT_FROM:%Y-%m-%d}
    to: {CUT_TO:%Y-%m-%d}
{action_lines}
    confidence: direct
    provenance: {{author: ops, date: 2023-05-01, reason: racked but never cabled, reference: TICKET-1}}
""")


def test_exclude_lowers_total_by_that_hosts_hours_and_rejects_with_the_rule_id(snapshot, tmp_path):
    snapshot_dir, site = snapshot
    plain = reconstruct(snapshot_dir, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    before = pl.read_parquet(tmp_path / "plain" / "spans.parquet")
    total = before.filter(pl.col("level") == "total")
    host = total.get_column("hypervisor_hostname").sort()[0]
    host_hours = hours_in(total.filter(pl.col("hypervisor_hostname") == host), CUT_FROM, CUT_TO, site.end)
    assert host_hours > 0
    rules = tmp_path / "rules.yaml"
    write_rules(rules, host, "    action: exclude")
    ruled = reconstruct(snapshot_dir, tmp_path / "ruled", "--rules", str(rules))
    assert ruled.returncode == 0, ruled.stderr
    after = pl.read_parquet(tmp_path / "ruled" / "spans.parquet").filter(pl.col("level") == "total")
    whole = dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1)
    lost = hours_in(total, *whole, site.end) - hours_in(after, *whole, site.end)
    assert lost == pytest.approx(host_hours, rel=1e-9)
    rejected = pl.read_parquet(tmp_path / "ruled" / "rejected.parquet").filter(pl.col("rule_id").is_not_null())
    assert set(rejected["rejection_reason"]) == {"manual_rule"}
    assert set(rejected["rule_id"]) == {"rack-4-never-cabled"}
    mine = rejected.filter(pl.col("level") == "total")
    # Nova's row is cut (Blazar's row of the host is excluded too: it must not fill the gap).
    assert mine.filter(pl.col("source_table") == "nova.compute_nodes")["hours"].sum() == pytest.approx(host_hours)
    assert set(mine["source_table"]) == {"nova.compute_nodes", "blazar.computehosts"}
    audit = json.loads((tmp_path / "ruled" / "audit.json").read_text())
    table = {row["level"]: row for row in audit["rules"] if row["rule_id"] == "rack-4-never-cabled"}
    assert table["total"]["hours_excluded"] == pytest.approx(mine["hours"].sum())


def test_set_node_type_relabels_only_the_range(snapshot, tmp_path):
    snapshot_dir, site = snapshot
    base = reconstruct(snapshot_dir, tmp_path / "base")
    assert base.returncode == 0, base.stderr
    total = pl.read_parquet(tmp_path / "base" / "spans.parquet").filter(pl.col("level") == "total")
    host = total.get_column("hypervisor_hostname").sort()[0]
    rules = tmp_path / "rules.yaml"
    write_rules(rules, host, "    action: set_node_type\n    node_type: relabelled")
    assert reconstruct(snapshot_dir, tmp_path / "out", "--rules", str(rules)).returncode == 0
    after = pl.read_parquet(tmp_path / "out" / "spans.parquet").filter(pl.col("level") == "total")
    changed = after.filter(pl.col("node_type") == "relabelled")
    assert set(changed["rule_id"]) == {"rack-4-never-cabled"}
    assert hours_in(changed, dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), site.end) == pytest.approx(
        hours_in(total.filter(pl.col("hypervisor_hostname") == host), CUT_FROM, CUT_TO, site.end), rel=1e-9)


def test_a_bad_rules_file_fails_with_one_clear_line(snapshot, tmp_path):
    snapshot_dir, _ = snapshot
    rules = tmp_path / "rules.yaml"
    write_rules(rules, "h1", "    action: forget")
    result = reconstruct(snapshot_dir, tmp_path / "out", "--rules", str(rules))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown action 'forget'" in lines[0] and "rack-4-never-cabled" in lines[0]
    assert not (tmp_path / "out" / "spans.parquet").exists()


@pytest.fixture(scope="module")
def base(snapshot, tmp_path_factory):
    """The site's spans without rules."""
    snapshot_dir, _ = snapshot
    out = tmp_path_factory.mktemp("base")
    result = reconstruct(snapshot_dir, out)
    assert result.returncode == 0, result.stderr
    return pl.read_parquet(out / "spans.parquet")


def reservable_host(base: pl.DataFrame, site_end: dt.datetime) -> tuple[str, float]:
    """A host Blazar has reservable during the cut, and its reservable hours in it."""
    reservable = base.filter(pl.col("level") == "reservable")
    for host in reservable.get_column("hypervisor_hostname").unique().sort():
        hours = hours_in(reservable.filter(pl.col("hypervisor_hostname") == host), CUT_FROM, CUT_TO, site_end)
        if hours > 0:
            return host, hours
    raise AssertionError("no reservable host in the cut")


def test_set_pool_ondemand_ends_blazars_say_and_the_audit_counts_the_overridden_hours(snapshot, base, tmp_path):
    snapshot_dir, site = snapshot
    host, hours = reservable_host(base, site.end)
    rules = tmp_path / "rules.yaml"
    write_rules(rules, host, "    action: set_pool\n    pool: ondemand")
    result = reconstruct(snapshot_dir, tmp_path / "out", "--rules", str(rules))
    assert result.returncode == 0, result.stderr
    after = pl.read_parquet(tmp_path / "out" / "spans.parquet").filter(
        (pl.col("level") == "reservable") & (pl.col("hypervisor_hostname") == host))
    assert hours_in(after, CUT_FROM, CUT_TO, site.end) == 0.0
    # the rule is also positive evidence of the on-demand pool: the time it took from Blazar is ondemand
    ondemand = pl.read_parquet(tmp_path / "out" / "spans.parquet").filter(
        (pl.col("level") == "ondemand") & (pl.col("hypervisor_hostname") == host))
    assert hours_in(ondemand.filter(pl.col("rule_id") == "rack-4-never-cabled"), CUT_FROM, CUT_TO, site.end) \
        == pytest.approx(hours, rel=1e-9)
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    rows = {row["level"]: row for row in audit["rules"] if row["rule_id"] == "rack-4-never-cabled"}
    assert set(rows) == {"reservable", "ondemand"}
    row = rows["reservable"]
    assert row["rows_overridden"] >= 1 and row["confidence"] == "direct"
    assert row["hours_overridden"] == pytest.approx(hours, rel=1e-9)
    assert not [w for w in audit["warnings"] if "matches nothing" in w]


def rules_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "rules", "check", "--site",
                           "chi", "--quiet", *args], capture_output=True, text=True, check=False)


def test_rules_check_prints_per_rule_what_reconstruct_would_change_and_writes_nothing(snapshot, base, tmp_path):
    snapshot_dir, site = snapshot
    pooled, hours = reservable_host(base, site.end)
    excluded = next(h for h in base.get_column("hypervisor_hostname").unique().sort() if h != pooled)
    rules = tmp_path / "rules.yaml"
    write_rules(rules, excluded, "    action: exclude")
    text = rules.read_text()
    rules.write_text(text + text.replace("rules:\n", "").replace("rack-4-never-cabled", "pool-change")
                     .replace(excluded, pooled).replace("action: exclude", "action: set_pool\n    pool: ondemand")
                     + text.replace("rules:\n", "").replace("rack-4-never-cabled", "ghost")
                     .replace(excluded, "no-such-host").replace("from: 2023-03-01", "from: 2023-05-01")
                     .replace("to: 2023-04-01", "to: 2023-06-01"))
    before = sorted(p for p in tmp_path.rglob("*"))
    snapshot_files = sorted(p for p in snapshot_dir.rglob("*"))
    result = rules_check("--rules", str(rules), str(snapshot_dir))
    assert result.returncode == 0, result.stderr
    assert sorted(p for p in tmp_path.rglob("*")) == before and sorted(snapshot_dir.rglob("*")) == snapshot_files
    # the same numbers as a real reconstruct with these rules
    assert reconstruct(snapshot_dir, tmp_path / "out", "--rules", str(rules)).returncode == 0
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    blocks = result.stdout.split("\nrule ")
    assert blocks[0].startswith("rules check: site chi, 3 rule(s)")
    printed = {block.split("'")[1]: block.splitlines() for block in blocks[1:]}
    for row in audit["rules"]:
        line = next(line.split() for line in printed[row["rule_id"]] if line.split()[0] == row["level"])
        assert float(line[2].replace(",", "")) == pytest.approx(row["hours_excluded"], abs=0.05)
        assert float(line[4].replace(",", "")) == pytest.approx(row["hours_overridden"], abs=0.05)
    assert float(next(line for line in printed["pool-change"] if "reservable" in line).split()[4]
                 .replace(",", "")) == pytest.approx(hours, abs=0.05)
    assert printed["ghost"][1].strip() == "changes nothing"
    assert "warning: rule 'ghost' (exclude) matches nothing" in result.stdout


@pytest.mark.parametrize("body, message", [
    ("rules:\n  - id: x\n    action: exclude\n", "rule 'x': missing site"),
    ("rules: []\n", "no rule names site 'chi'"),
])
def test_rules_check_errors_are_one_line(snapshot, tmp_path, body, message):
    snapshot_dir, _ = snapshot
    rules = tmp_path / "rules.yaml"
    rules.write_text(body)
    result = rules_check("--rules", str(rules), str(snapshot_dir))
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert message in line
