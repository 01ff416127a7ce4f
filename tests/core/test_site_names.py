"""Site names become directory names and label values: only [A-Za-z0-9][A-Za-z0-9_.-]* is accepted."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from exporter.config import SiteConfig, load_config
from exporter.errors import ConfigError


def _config(tmp_path, site: str) -> str:
    path = tmp_path / "sites.yaml"
    path.write_text(f"data_dir: {tmp_path / 'a' / 'b' / 'data'}\n"
                    f"sites:\n  '{site}':\n    db_url: sqlite:///{tmp_path / 'site.sqlite'}\n")
    return str(path)


@pytest.mark.parametrize("name", ["demo-chi", "chi_uc", "kvm.tacc", "7", "A-1_b.c"])
def test_ordinary_site_names_are_valid(tmp_path, name):
    assert list(load_config(_config(tmp_path, name), environ={}).site_names) == [name]


@pytest.mark.parametrize("name", ["../../../x", "..", ".hidden", "-x", "a/b", "a\\\\b", "x y", "", "chi\u00e9"])
def test_a_site_name_that_is_not_a_plain_name_is_a_one_line_config_error(tmp_path, name):
    with pytest.raises(ConfigError, match="site name .* must be letters, digits") as caught:
        load_config(_config(tmp_path, name), environ={})
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="site name"):
        SiteConfig(name=name, display_name="x", db_url="sqlite:///x.sqlite")


def test_extract_with_a_traversing_site_name_writes_nothing_outside_the_data_dir(tmp_path):
    sqlite3.connect(tmp_path / "site.sqlite").close()
    config = _config(tmp_path, "../../../x")
    for argv in (["--site", "../../../x", "--config", config],
                 ["--site", "../../../x", "--db-url", f"sqlite:///{tmp_path / 'site.sqlite'}",
                  "--out", str(tmp_path / "a" / "b" / "data")]):
        proc = subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "extract", "--quiet",
                               *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "site name" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.sqlite", "sites.yaml"]


def test_reconstruct_refuses_a_traversing_site_name(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "reconstruct",
                           str(tmp_path), "--site", "../x", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "site name '../x'" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
