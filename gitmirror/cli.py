"""The command line: a thin shell over :mod:`gitmirror.api`."""

from __future__ import annotations

import click

from gitmirror import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gitmirror")
def cli() -> None:
    """Mirror Git repositories with their Git LFS content, with the whole history."""


def main() -> None:
    cli()
