"""The contacts domain, its per-user persistent actors, the HTTP service and the Typer CLI."""
