#!/usr/bin/env bash
# Idempotent setup on a fresh Debian machine: apt packages (promtool/prometheus, MariaDB, victoria-metrics),
# a running MariaDB reachable as root without password on 127.0.0.1, and .venv with the package.
# Safe to run again: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

log() { printf '[setup] %s\n' "$*" >&2; }

missing=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)  # single node, for the import-vm tests
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # Debian's packages try to start services; we start what we need ourselves.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mariadb_up() { mariadb-admin --connect-timeout=2 -uroot -h127.0.0.1 -P3306 ping >/dev/null 2>&1; }
if ! mariadb_up; then
  log "starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do mariadb_up && break; sleep 1; done
fi
if ! mariadb_up; then
  # A fresh Debian install authenticates root by unix socket only; allow TCP without password
  # (a throwaway test server on loopback — never do this on a real database host).
  $SUDO mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" >/dev/null 2>&1 || true
fi
mariadb_up && log "MariaDB is up on 127.0.0.1:3306" || log "WARNING: MariaDB is not reachable on 127.0.0.1:3306"

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import exporter, pytest, hypothesis, matplotlib, grafana_foundation_sdk' >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  log "installing the package with test, plot and dashboards extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[test,plot,dashboards]'
  touch .venv/.installed
fi
log "ready: .venv/bin/usage-exporter --help"
