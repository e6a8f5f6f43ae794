"""Compatibility only: the two names ``contacts_cli/cli/`` still imports from here.

The user actor now lives in one module per job (ids, messages, envelope, user_state,
snapshot_codec, commands, actor). Delete this module once ``cli/db.py`` imports
``persistence_id`` from :mod:`contacts_cli.service.ids` and ``cli/demo.py`` imports
``drain_snapshots`` from :mod:`contacts_cli.service.actor`.
"""

from contacts_cli.service.actor import drain_snapshots
from contacts_cli.service.ids import persistence_id

__all__ = ["drain_snapshots", "persistence_id"]
