"""The ``gossamer`` command line (Typer + Rich); the entry point is ``gossamer.cli.main:run``."""
