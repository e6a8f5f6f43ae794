"""A contact's fields as command-line options, declared once for ``add`` and ``edit``.

Typer reads a command's options from its function's signature and has no way to share a
group of options between commands (fastapi/typer issue #153). :func:`with_contact_fields`
does it the way Typer itself reads commands: it gives the command a signature in which the
nine field options stand where the command's ``fields`` parameter stood, and calls the
command with ``fields``: the contact data of the options given (``--email`` becomes
``emails``), in the order of :data:`FIELD_OPTIONS`, None ones left out.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

ContactData = dict[str, Any]
"""Contact fields as the backends take them (``{"name": ..., "emails": [...], ...}``)."""

FIELD_OPTIONS: dict[str, tuple[str, Any]] = {
    # parameter (and option) name: (contact field, its Typer declaration)
    "name": ("name", Annotated[str | None, typer.Option("--name", "-n", help="Full name.")]),
    "email": ("emails", Annotated[
        list[str] | None, typer.Option("--email", "-e", help="Email address (repeatable).")]),
    "phone": ("phones", Annotated[
        list[str] | None,
        typer.Option("--phone", "-p", help="Phone number, any format (repeatable).")]),
    "company": ("company", Annotated[
        str | None, typer.Option("--company", "-c", help="Company.")]),
    "title": ("title", Annotated[str | None, typer.Option("--title", help="Job title.")]),
    "address": ("address", Annotated[
        str | None, typer.Option("--address", help="Postal address.")]),
    "birthday": ("birthday", Annotated[
        str | None, typer.Option("--birthday", help="YYYY-MM-DD, or --MM-DD without a year.")]),
    "notes": ("notes", Annotated[str | None, typer.Option("--notes", help="Free-text notes.")]),
    "label": ("labels", Annotated[
        list[str] | None, typer.Option("--label", "-l", help="A label (repeatable).")]),
}


def with_contact_fields(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with the field options in place of its keyword-only ``fields`` parameter.

    Typer calls commands with keyword arguments only, so every parameter of the new
    signature is keyword-only and keeps its place (the order ``--help`` lists them in).
    """
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.name == "fields":
            parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                             annotation=declaration)
                           for name, (_, declaration) in FIELD_OPTIONS.items()]
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def with_fields(**given: Any) -> None:
        fields: ContactData = {}
        for name, (field, _) in FIELD_OPTIONS.items():
            value = given.pop(name)
            if value is not None:
                fields[field] = list(value) if isinstance(value, (list, tuple)) else value
        command(**given, fields=fields)

    with_fields.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters)
    with_fields.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_fields
