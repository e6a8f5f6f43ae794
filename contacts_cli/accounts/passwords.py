"""What a password may be; checked before anything is hashed or sent.

No argon2 here: client mode checks a password with this module before it sends it, and must
not pay for importing the hashing library.
"""

from __future__ import annotations

import unicodedata

from contacts_cli.backends.errors import Invalid

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 1024
"""argon2 takes any length; a cap keeps a megabyte "password" from costing a megabyte of
hashing per login attempt."""


def check_password(password: str) -> str:
    """The password if it is acceptable; else ``Invalid`` on the field ``password``.

    At least :data:`MIN_PASSWORD_CHARS` characters, at most :data:`MAX_PASSWORD_BYTES` bytes
    of UTF-8, and no control characters (a client could not type them, and a line read from
    stdin ends at one). Nothing else is imposed: a long passphrase beats any character rule.
    """
    if len(password) < MIN_PASSWORD_CHARS:
        raise Invalid([("password", f"must be at least {MIN_PASSWORD_CHARS} characters, "
                                    f"got {len(password)}")])
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise Invalid([("password", f"must be at most {MAX_PASSWORD_BYTES} bytes of UTF-8")])
    for position, char in enumerate(password, 1):
        if unicodedata.category(char) in {"Cc", "Cs"}:
            raise Invalid([("password", f"must not contain control characters "
                                        f"(U+{ord(char):04X} at character {position})")])
    return password

