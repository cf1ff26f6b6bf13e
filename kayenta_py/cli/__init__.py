"""The command line: ``kayenta-py`` (main) and its commands."""

from kayenta_py.cli.main import main

__all__ = ["main"]
