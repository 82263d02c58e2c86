"""The `arp` command line. Thin: parses flags, calls the harness, prints. Nothing imports it."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from autoresearch_portable.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="autoresearch-portable: the autoresearch loop on any hardware, with comparable results.",
)

BackendOpt = typer.Option(
    None, "--backend", help="auto|cuda|mps|mlx|cpu (default: $ARP_BACKEND or auto)"
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def doctor(
    backend: Optional[str] = BackendOpt,
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """What hardware was found, which backend and kernels would be used and why."""
    from autoresearch_portable.detect import doctor_report, format_doctor

    report = doctor_report(backend)
    typer.echo(json.dumps(report, indent=2) if as_json else format_doctor(report))


def main() -> None:
    try:
        app(standalone_mode=False)
    except UserError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # click usage errors (bad flag) are user errors too
        import click

        if isinstance(e, click.ClickException):
            typer.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
