"""The ``umbenet`` command. A thin layer: each command checks its inputs and calls one library
function; errors meant for users become a clean message and exit code 2, never a traceback."""
from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from umbenet_cli.errors import USER_ERRORS

app = typer.Typer(
    name="umbenet",
    help="UMBEnet toolkit: multimodal (video, audio, text) emotion recognition with missing modalities.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["pool.size=16", ...]`` -> ``{"pool.size": "16"}``; a malformed item is a user error."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE (e.g. --set pool.size=16)", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@app.command()
def info(
    preset: Annotated[str, typer.Option(help="Model preset: default, paper, authors-code, tiny.")] = "default",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. pool.size=16.")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="Describe this checkpoint folder instead.")] = None,
) -> None:
    """Build a model (from a preset or a checkpoint) and show its configuration and parameters."""
    from umbenet_cli.describe import describe_model

    describe_model(preset=preset, overrides=parse_overrides(set_), checkpoint=checkpoint)


def main(argv: list[str] | None = None) -> int:
    """Entry point; callable from tests with an argv list. Returns the exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except USER_ERRORS as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("[yellow]aborted[/]")
        return 130
    except (typer.BadParameter, __import__("click").UsageError) as exc:
        console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
