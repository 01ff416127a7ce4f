"""``grants --columns`` on the real MariaDB: the printed grants are enough for extract and the live
refresh, and keep every undeclared column (``instances.user_data``, ``key_data``) out of reach."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from exporter.cli import cli
from exporter.config import SiteConfig
from exporter.extract.copy import extract_snapshot
from exporter.live.source import LiveSite
from exporter.adapters.registry import declared_tables
from tests.live.support import site_config, site_ending_now

pytestmark = pytest.mark.mariadb

SECRET_COLUMNS = ("user_data", "key_data")
COLUMN_GRANT = re.compile(r"^GRANT SELECT \(`([^`]+)`\) ON `([^`]+)`\.`([^`]+)` TO 'ro'@'%';$")


def printed(*options: str) -> list[str]:
    result = CliRunner().invoke(cli, ["grants", "--user", "ro", "--host", "%", *options])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_column_grants_name_exactly_the_declared_columns_and_say_how_to_create_the_user():
    lines = printed("--columns", "--db-prefix", "p_")
    granted = {COLUMN_GRANT.match(line).groups() for line in lines if line.startswith("GRANT SELECT")}
    metadata = {line for line in lines if line.startswith("GRANT REFERENCES")}
    assert len(metadata) == len(declared_tables())
    declared = {(column, f"p_{s.schema}", s.table) for s in declared_tables() for column in s.columns}
    assert granted == declared
    assert not {column for column, _, table in granted if table == "instances"} & set(SECRET_COLUMNS)
    assert any(line.startswith("--   CREATE USER 'ro'@'%' IDENTIFIED BY") for line in lines)
    assert any(line.startswith("--   CREATE USER") for line in printed())  # per-table grants say it too


@pytest.fixture(scope="module")
def generated(mariadb_url, tmp_path_factory):
    with site_ending_now(mariadb_url, tmp_path_factory.mktemp("truth"), hosts=4, days=10) as site:
        nova = site.databases["nova"]
        admin = sa.create_engine(mariadb_url)
        with admin.begin() as conn:  # what real Nova has and the tool must never read
            conn.exec_driver_sql(f"ALTER TABLE `{nova}`.instances ADD COLUMN user_data MEDIUMTEXT, "
                                 "ADD COLUMN key_data MEDIUMTEXT")
            conn.exec_driver_sql(f"UPDATE `{nova}`.instances SET user_data = 'cloud-init secret', key_data = 'ssh-rsa'")
        admin.dispose()
        yield site


@pytest.fixture(scope="module")
def column_user(generated, mariadb_url):
    """A user created as the output says, with exactly the printed --columns grants."""
    user, password = f"ro_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(mariadb_url)
    prefix = generated.databases["nova"].removesuffix("nova")
    statements = [line.removesuffix(";") for line in CliRunner().invoke(cli, [
        "grants", "--user", user, "--host", "127.0.0.1", "--db-prefix", prefix, "--columns"]).output.splitlines()
        if line.startswith("GRANT")]
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
    applied = 0
    for statement in statements:  # as `mysql --force`: absent optional tables/columns fail harmlessly
        try:
            with admin.begin() as conn:
                conn.exec_driver_sql(statement)
            applied += 1
        except sa.exc.DBAPIError as err:
            assert err.orig.args[0] in (1054, 1146), err
    assert applied > 50
    yield f"mysql+pymysql://{user}:{password}@127.0.0.1:3306/"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER '{user}'@'127.0.0.1'")
    admin.dispose()


def test_the_column_user_can_extract_and_refresh_live(generated, column_user, tmp_path):
    site = SiteConfig(name="gen", display_name="gen", db_url=column_user, databases=generated.databases)
    result = extract_snapshot(site, tmp_path, snapshot_id="s")
    assert result.failed_required == []
    tables = result.manifest["tables"]
    assert tables["nova.instances"]["rows"] > 0
    assert {c["name"] for c in tables["nova.instances"]["columns"]}.isdisjoint(SECRET_COLUMNS)
    live = LiveSite(site_config(generated, column_user))
    try:
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        live(now)
        live(now + dt.timedelta(seconds=1))  # an incremental refresh (changed rows, Blazar COUNTs)
        assert live.tables.last_mode == "incremental"
    finally:
        live.close()


def test_the_column_user_cannot_read_undeclared_columns(generated, column_user):
    engine = sa.create_engine(column_user)
    nova = generated.databases["nova"]
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(f"SELECT COUNT(uuid) FROM `{nova}`.instances").scalar() > 0
            for query in (f"SELECT user_data FROM `{nova}`.instances", f"SELECT key_data FROM `{nova}`.instances",
                          f"SELECT * FROM `{nova}`.instances"):
                with pytest.raises(sa.exc.OperationalError) as denied:
                    conn.exec_driver_sql(query).fetchall()
                assert denied.value.orig.args[0] in (1142, 1143), query
    finally:
        engine.dispose()


def test_a_table_the_user_cannot_see_is_reported_as_absent_or_not_granted(generated, column_user, tmp_path):
    site = SiteConfig(name="gen", display_name="gen", db_url=column_user, databases=generated.databases)
    tables = extract_snapshot(site, tmp_path, snapshot_id="s").manifest["tables"]
    unseen = tables["zun.container"]  # not generated: absent, and no grant could exist for it
    assert "absent or not granted" in unseen["error"]
    assert "missing GRANT" not in unseen["error"]
