"""The command line: ``corral serve`` and one module per command group."""
