"""The `banana` command line: parses arguments and calls library functions, nothing more.

Every user error (a `BananaError` from any layer) becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import importlib
import sys

import click

from banana_sdk import __version__
from banana_sdk.errors import BananaError

# command groups contributed by each layer: (module, attribute)
_COMMAND_MODULES = (
    "banana_sdk.commands",
    "banana_sdk.appbuild",
    "banana_sdk.peels.commands",
    "banana_sdk.subjects.commands",
    "banana_sdk.upscale_commands",
    "banana_sdk.live_commands",
    "banana_sdk.train_commands",
    "converters.preflight.commands",
    "converters.commands",
    "device_tests.commands",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="banana")
def banana() -> None:
    """Banana-SDK: convert, run and profile Nano-Banana text-to-image models on Android."""


def _register() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that layer is not installed in this checkout
            raise
        for command in getattr(module, "COMMANDS", ()):
            banana.add_command(command)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turn user errors into one line and a non-zero exit."""
    try:
        banana.main(args=argv, prog_name="banana", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except BananaError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except MemoryError:
        click.echo("error: out of memory", err=True)
        return 1
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
