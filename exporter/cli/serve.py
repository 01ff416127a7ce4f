"""``usage-exporter serve``: the live /metrics endpoint for every configured site."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import click

from exporter.cli.options import Duration, config_option

PASSWORD_ENV = "USAGE_EXPORTER_BASIC_AUTH_PASSWORD"


def _basic_auth(ctx: click.Context, param: click.Parameter, user: str | None):
    """Build BasicAuth from the user option + a password from a file or the environment."""
    from exporter.live.auth import BasicAuth

    if not user:
        return None
    password_file = ctx.params.get("basic_auth_password_file")
    if password_file:
        try:
            password = Path(password_file).read_text().rstrip("\r\n")
        except OSError as err:
            raise click.BadParameter(f"cannot read password file {password_file}: {err.strerror}",
                                     ctx, param) from None
    else:
        password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise click.BadParameter(f"needs a password: --basic-auth-password-file or ${PASSWORD_ENV}", ctx, param)
    return BasicAuth.from_password(user, password)


@click.command(help=f"""Serve the present usage of every site on /metrics for Prometheus to scrape.

Values are the reconstruct engine applied to the live databases (read-only), refreshed in the
background every refresh_interval (per site in the config); a scrape never waits on a database.
Counters continue the backfilled history from each site's history_start.

\b
Examples:
  usage-exporter serve --config etc/sites.yaml
  usage-exporter serve --site chi_uc --listen 127.0.0.1:9188
  {PASSWORD_ENV}=... usage-exporter serve --basic-auth-user prometheus \\
      --tls-cert /etc/ssl/exporter.pem --tls-key /etc/ssl/exporter.key
""")
@config_option
@click.option("--site", "sites", multiple=True, help="Serve only this site (repeatable). Default: all.")
@click.option("--listen", default=":9188", show_default=True, help="[HOST]:PORT to listen on.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Private key for --tls-cert.")
@click.option("--basic-auth-password-file", type=click.Path(exists=True, dir_okay=False), is_eager=True,
              help=f"File holding the basic-auth password (else ${PASSWORD_ENV}).")
@click.option("--basic-auth-user", "auth", callback=_basic_auth,
              help="Require HTTP basic auth with this user; the password never goes on the command line.")
@click.option("--full-reload", "full_reload", type=Duration(), default="1h", show_default=True,
              help="Re-read every table completely this often (catches hard deletes); "
                   "in between only changed rows are read.")
@click.option("--warm-start/--cold-start", default=True, show_default=True,
              help="Keep each site's state under <data_dir>/<site>/live-state/ after every refresh and, on start, "
                   "serve it at once and catch up incrementally (--cold-start: ignore it, read everything).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Manual rules file for every served site (docs/rules.md) [default: each site's rules:].")
def command(config_path, sites, listen, tls_cert, tls_key, basic_auth_password_file, auth, full_reload,
            warm_start, log_level, rules_path):
    from exporter.config import load_config
    from exporter.live import serve_config

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path)
    for name in sites:
        config.site(name)  # unknown site: one clear error before anything starts
    if rules_path is not None:
        config = dataclasses.replace(config, unresolved_sites={
            name: dataclasses.replace(site, rules_file=rules_path) for name, site in config.unresolved_sites.items()})

    def ready(exporter) -> None:
        click.echo(f"serving {', '.join(exporter.refreshers)} on {exporter.url}/metrics "
                   f"({'basic auth' if auth else 'no auth'}); Ctrl-C or SIGTERM to stop", err=True)

    serve_config(config, sites=list(sites) or None, listen=listen, tls_cert=tls_cert, tls_key=tls_key,
                 auth=auth, full_reload_interval=full_reload.total_seconds(), warm_start=warm_start, ready=ready)
