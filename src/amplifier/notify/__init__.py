"""Alerts where operators already are: what happened, grouped into short messages that say what to do, sent to the
campaign's destinations (chat, mail, a webhook: any Apprise URL), never repeated too often, never holding a secret.

* ``alerting``: :class:`~amplifier.notify.alerting.Alerting`, what the daemon holds: the notifier, the dead man's
  switch, the digest and a watchdog for a pass that does not end, behind a few calls;
* ``alerts``: the :class:`~amplifier.notify.alerts.Alert` kinds (one constructor per event) and how a batch of them
  becomes one :class:`~amplifier.notify.alerts.Message`;
* ``notifier``: the :class:`~amplifier.notify.notifier.Notifier` the daemon raises alerts on and flushes, which
  groups them per destination, throttles repeats (``throttle``: what was sent when, kept in the state folder) and
  sends in the background;
* ``destinations``: the ``notify:`` section of ``schedule.yaml`` resolved into destinations (their URLs are
  secrets, read like the accounts' secrets);
* ``transport``: sending one message with the ``apprise`` library (imported only when something is sent);
* ``check``: the ``notify`` command's check of each destination (its URL set; a test message sent);
* ``digest``: the daily digest, read from the delivery ledger;
* ``heartbeat``: the dead man's switch (``AMPLIFIER_HEARTBEAT_URL``, pinged after each pass);
* ``redaction``: every text is cleaned of secrets before it leaves (:mod:`amplifier.redact`, plus the
  destinations' URLs).

May import: ``delivery``, ``publish``, ``plan``, ``campaign``, ``platforms``, ``errors``, ``clock``. Never ``daemon``
or ``cli`` (the daemon calls this stage; the ``notify`` command renders its results).
"""
