"""``contacts``: the Typer command line (``app.main`` is the console script)."""
