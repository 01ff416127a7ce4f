"""The ``usage-exporter`` command: a click group whose subcommands live one per module.

A subcommand module ``exporter/cli/<name>.py`` defines ``command`` (a click.Command). Bodies parse
options, make one library call and print its summary; library errors become one line here.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import importlib.util
import os
import sys

import click

from exporter import __version__, children
from exporter.engine.plans import prefer_in_memory_engine
from exporter.errors import UsageExporterError

# command name -> module under exporter.cli (imported only when the command is used)
COMMANDS = {
    "demo": "demo",
    "generate-site": "generate_site",
    "extract": "extract",
    "grants": "grants",
    "reconstruct": "reconstruct",
    "rules": "rules",
    "backfill": "backfill",
    "install-blocks": "install_blocks",
    "import-vm": "import_vm",
    "run": "run",
    "serve": "serve",
    "plot": "plot",
    "dashboards": "dashboards",
    "compare": "compare",
    "report": "report",
    "explain": "explain",
}

# Commands that free and reuse about the same memory over and over (backfill: window after window)
# keep polars' freed memory for the rest of the run: its allocator (jemalloc; polars sets it to
# return freed pages after 0.5-1 s) otherwise hands them back to the kernel and faults them in
# again for the next window, which cost ~0.7 s of the ~3.7 s backfill spends itself on its 1-year
# bench (BENCHMARKS.md, session 6). Set before polars is first imported, appended to what the
# environment holds (jemalloc takes the last value of an option; a parent that imported polars
# passes polars' defaults down, so an existing value cannot be told from the user's own).
KEEP_FREED_MEMORY = {"backfill": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}
ALLOCATOR_SETTINGS = "_RJEM_MALLOC_CONF"  # read once by polars' jemalloc when polars loads
# Commands that make no BLAS call: numpy's OpenBLAS otherwise starts a thread per core when numpy
# loads, and each spins for its work a while before it sleeps (~0.1 s of CPU at every backfill's
# start, BENCHMARKS.md "Session 15: where backfill's own CPU goes"). Read once by OpenBLAS when
# numpy loads; a value already in the environment (the user's) is kept.
NO_BLAS_THREADS = {"backfill"}
BLAS_THREADS = "OPENBLAS_NUM_THREADS"


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (keeps --help fast)."""

    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._module_exists(name)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not self._module_exists(name):
            return None
        held = os.environ.get(ALLOCATOR_SETTINGS, "")
        if name in KEEP_FREED_MEMORY and not held.endswith(KEEP_FREED_MEMORY[name]):
            # once per process: a command looked up again (tests, --help) does not grow the value
            os.environ[ALLOCATOR_SETTINGS] = ",".join(filter(None, [held, KEEP_FREED_MEMORY[name]]))
        if name in NO_BLAS_THREADS:
            os.environ.setdefault(BLAS_THREADS, "1")
        return importlib.import_module(f"exporter.cli.{COMMANDS[name]}").command

    @staticmethod
    def _module_exists(name: str) -> bool:
        return importlib.util.find_spec(f"exporter.cli.{COMMANDS[name]}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="usage-exporter")
def cli() -> None:
    """Rebuild an OpenStack (Nova + Blazar) cloud's usage history and export it to Prometheus.

    \b
    Typical flow:
      usage-exporter demo                         # everything on a synthetic demo site
      usage-exporter extract --site chi_uc        # DB -> dated parquet snapshot
      usage-exporter reconstruct SNAPSHOT --site chi_uc --out OUT
      usage-exporter backfill OUT --out BACKFILL --blocks
      usage-exporter install-blocks BACKFILL --data-dir /var/lib/prometheus/metrics2
      usage-exporter import-vm OUT --url http://127.0.0.1:8428   # or straight into VictoriaMetrics
      usage-exporter serve                        # live /metrics
    """


def main(argv: list[str] | None = None) -> None:
    """Console entry point: library errors become one line on stderr and a non-zero exit.

    SIGTERM and Ctrl-C kill child processes and remove temporary outputs before exiting.
    """
    prefer_in_memory_engine()
    skip_collections_at_exit()
    with children.signals_stop_children():  # around the except clauses too: their cleanup is not interrupted
        _main(argv)


def skip_collections_at_exit() -> None:
    """At exit the OS takes the whole heap back at once: the interpreter's last collections would
    only walk every object to free what goes anyway (0.09 -> 0.04 s of CPU after backfill's last
    promtool, BENCHMARKS.md session 12). Every output is closed explicitly before then (backfill and
    reconstruct also fsync theirs) and none relies on a finalizer of cyclic garbage; the interpreter
    still flushes stdout/stderr after the exit handlers. Registered before the command loads its
    modules, so it runs after their exit handlers (that saves walking what they free; correctness
    does not depend on the order); once however often main runs."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def _main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="usage-exporter", standalone_mode=False)
    except UsageExporterError as err:
        from exporter.db import redact  # a last guard: no URL password in any error line

        click.secho(f"error: {redact(str(err))}", fg="red", err=True)
        for note in getattr(err, "__notes__", ()):  # e.g. a side thread that failed as well (exporter.sidethread)
            click.echo(f"  {redact(note)}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort:  # click's form of Ctrl-C
        children.kill_all()
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Exit as err:
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        children.kill_all()
        click.echo("interrupted", err=True)
        sys.exit(130)
    except children.Terminated:
        children.kill_all()
        click.echo("terminated", err=True)
        sys.exit(143)
