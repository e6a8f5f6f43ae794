"""Option groups: options several commands share, declared once and received as one value.

Typer reads a command's options from its function's signature and has no way to share a
group of options between commands (fastapi/typer issue #153). An :class:`OptionGroup` does
it the way Typer reads commands: decorating a command gives it a signature in which the
group's options stand where the command's parameter named after the group stood, and calls
the command with that parameter set to what the group collects from the values given.

Two groups: :data:`CONTACT_FIELDS` (``add``, ``edit``) and :data:`PAGING` (``list``,
``search``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import typer

V = TypeVar("V")

ContactData = dict[str, Any]
"""Contact fields as the backends take them (``{"name": ..., "emails": [...], ...}``)."""


@dataclass(frozen=True)
class OptionGroup(Generic[V]):
    """Options shared by several commands; use the group as the commands' decorator."""

    parameter: str
    """The command's keyword-only parameter that receives the group's value."""
    options: dict[str, tuple[Any, Any]]
    """Each option's parameter name: (its Typer declaration, its default)."""
    collect: Callable[[dict[str, Any]], V]
    """The values given (by parameter name) -> the value the command receives."""

    def __call__(self, command: Callable[..., None]) -> Callable[..., None]:
        """``command`` with the group's options in place of its ``parameter``.

        Typer calls commands with keyword arguments only, so every parameter of the new
        signature is keyword-only and keeps its place (the order ``--help`` lists them in).
        """
        signature = inspect.signature(command, eval_str=True)
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            if parameter.name == self.parameter:
                parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                                 default=default, annotation=declaration)
                               for name, (declaration, default) in self.options.items()]
            else:
                parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

        @functools.wraps(command)
        def with_group(**given: Any) -> None:
            values = {name: given.pop(name) for name in self.options}
            command(**given, **{self.parameter: self.collect(values)})

        with_group.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=parameters)
        with_group.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_group


_FIELD_OF_OPTION = {"email": "emails", "phone": "phones", "label": "labels"}


def _contact_data(values: dict[str, Any]) -> ContactData:
    """The fields given (``--email`` becomes ``emails``), None ones left out."""
    return {_FIELD_OF_OPTION.get(name, name): list(value) if isinstance(value, list) else value
            for name, value in values.items() if value is not None}


CONTACT_FIELDS: OptionGroup[ContactData] = OptionGroup("fields", {
    "name": (Annotated[str | None, typer.Option("--name", "-n", help="Full name.")], None),
    "email": (Annotated[list[str] | None, typer.Option(
        "--email", "-e", help="Email address (repeatable).")], None),
    "phone": (Annotated[list[str] | None, typer.Option(
        "--phone", "-p", help="Phone number, any format (repeatable).")], None),
    "company": (Annotated[str | None, typer.Option("--company", "-c", help="Company.")], None),
    "title": (Annotated[str | None, typer.Option("--title", help="Job title.")], None),
    "address": (Annotated[str | None, typer.Option("--address", help="Postal address.")], None),
    "birthday": (Annotated[str | None, typer.Option(
        "--birthday", help="YYYY-MM-DD, or --MM-DD without a year.")], None),
    "notes": (Annotated[str | None, typer.Option("--notes", help="Free-text notes.")], None),
    "label": (Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="A label (repeatable).")], None),
}, _contact_data)


@dataclass(frozen=True)
class Paging:
    """Which contacts a listing shows: a page of ``limit``, every page, or from ``cursor``."""

    limit: int
    all: bool
    cursor: str | None


PAGING: OptionGroup[Paging] = OptionGroup("paging", {
    "limit": (Annotated[int, typer.Option("--limit", min=1, help="Contacts per page.")], 50),
    "all_": (Annotated[bool, typer.Option(
        "--all", "-a", help="Every contact, page after page.")], False),
    "cursor": (Annotated[str | None, typer.Option(
        "--cursor", help="Continue from a previous page's cursor.")], None),
}, lambda values: Paging(values["limit"], values["all_"], values["cursor"]))
