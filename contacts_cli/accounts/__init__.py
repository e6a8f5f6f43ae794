"""Accounts: the user names and passwords CardDAV clients (and Basic auth on ``/api``) log in with.

One job per module:

* :mod:`.passwords`: what a password may be (light: client mode checks with it);
* :mod:`.hashing`: argon2id hashing and verification, off the event loop and bounded;
* :mod:`.store`: the durable-state actor of one account (key ``contacts-account/<name>``)
  and the registry that finds or spawns it;
* :mod:`.service`: add, change a password, remove, verify: what the in-process backend offers;
* :mod:`.verifier`: checks a name and password against the stored hash, with a short cache
  keyed by the stored hash, so a password change or a removal takes effect at once;
* :mod:`.limiter`: failed logins counted per user name and per client address;
* :mod:`.basic`: HTTP Basic for Starlette: :func:`~.basic.authenticate` returns the user id
  of a request or raises the problem (401, 403, 429, 503) to answer it with.

An account's name is a user id (:func:`contacts_cli.service.ids.check_user_id`): logging in
as ``alice`` gives access to alice's contacts and nobody else's.
"""
