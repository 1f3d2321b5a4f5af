"""Command-line interface: one typer app, one module per command."""
