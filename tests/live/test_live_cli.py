"""``usage-exporter serve`` as an operator runs it: a real process, config file, auth, SIGTERM."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from tests.live.support import site_ending_now, wait_for
from tests.support import free_port

pytestmark = pytest.mark.mariadb


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


def test_serve_with_basic_auth_then_sigterm_exits_cleanly(mariadb_url, tmp_path):
    with site_ending_now(mariadb_url, tmp_path / "truth", hosts=4, days=10) as generated:
        config = tmp_path / "sites.yaml"
        config.write_text(yaml.safe_dump({"sites": {"synthetic": {
            "db_url": mariadb_url, "databases": generated.databases, "refresh_interval": 1,
            "history_start": generated.start.isoformat()}}}))
        port = free_port()
        env = dict(os.environ, USAGE_EXPORTER_BASIC_AUTH_PASSWORD="s3cret-for-test")
        process = subprocess.Popen(
            [sys.executable, "-c", "from exporter.cli import main; main()", "serve", "--config", str(config),
             "--listen", f"127.0.0.1:{port}", "--basic-auth-user", "prom"],
            stderr=subprocess.PIPE, text=True, env=env)
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            wait_for(lambda: b'openstack_usage_up{site="synthetic"} 1.0' in get(url, ("prom", "s3cret-for-test"))[1],
                     what="the served site up")
            assert get(url)[0] == 401
            assert get(url, ("prom", "wrong"))[0] == 401
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "serving synthetic on http://127.0.0.1" in stderr
    assert "Traceback" not in stderr and "s3cret-for-test" not in stderr


def test_serve_refuses_a_password_on_the_command_line_and_an_unknown_site(tmp_path):
    config = tmp_path / "sites.yaml"
    config.write_text(yaml.safe_dump({"sites": {"a": {"db_url": "sqlite:///x.sqlite"}}}))
    base = [sys.executable, "-c", "from exporter.cli import main; main()", "serve", "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if k != "USAGE_EXPORTER_BASIC_AUTH_PASSWORD"}
    no_password = subprocess.run([*base, "--basic-auth-user", "prom"], capture_output=True, text=True, env=env)
    assert no_password.returncode == 2 and "needs a password" in no_password.stderr
    assert subprocess.run([*base, "--basic-auth-password", "x"], capture_output=True, text=True).returncode == 2
    unknown = subprocess.run([*base, "--site", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown site 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


def test_serve_stops_with_one_line_on_a_bad_rules_file(tmp_path):
    # the sites open (exporter.live.late) right after the server answers: a bad rules file stops it there
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [not closed\n")
    config = tmp_path / "sites.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "sites": {"a": {
        "db_url": "sqlite:///x.sqlite", "rules": str(rules)}}}))
    done = subprocess.run([sys.executable, "-c", "from exporter.cli import main; main()", "serve", "--config",
                           str(config), "--listen", f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "rules.yaml" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "serving a on" not in done.stderr
