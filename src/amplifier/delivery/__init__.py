"""Delivery: the ledger that makes publishing exactly-once (``ledger/``: its interface, and the SQLite
implementation with its migrations), the one delivery path every write goes through (``deliver``: claim ->
publish -> outcome -> ledger), ``amplifier send`` on it (``send``), what happened to a post whose outcome is
unknown (``reconcile``), client-side rate limits (``ratelimit``), the accounts as their publishers see them
(``accounts``: the publishers' context, ``amplifier accounts``'s check), and follow-up writes on published posts
(``followups``: boosts, pins, deletions; ``retract``: what ``amplifier retract`` deletes).

May import: ``publish``, ``plan``, ``campaign``, ``platforms``, ``errors``, ``clock``. Never ``daemon`` or ``cli``.
"""
