"""``contacts_cli.io`` exports exactly its public names, and one error vocabulary.

Other packages import the io layer only through this module (httpx's test_exported_members).
"""

from __future__ import annotations

import inspect
from types import ModuleType

import contacts_cli.io as io_layer
from contacts_cli.io import errors


def test_all_public_members_are_exported_and_nothing_else() -> None:
    public = sorted(
        name
        for name, value in vars(io_layer).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    )
    assert sorted(io_layer.__all__) == public


def test_every_io_error_derives_from_the_layer_base_and_is_exported() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert {cls.__name__ for cls in classes} == {
        "ContactsIOError", "ImportFileError", "UnreadableFileError", "JsonTooDeep"
    }
    assert all(issubclass(cls, io_layer.ContactsIOError) for cls in classes)
    assert {cls.__name__ for cls in classes} <= set(io_layer.__all__)
