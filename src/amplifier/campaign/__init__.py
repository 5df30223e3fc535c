"""The campaign files: ``schedule.yaml`` and ``messages/*.yaml`` read with positions (``yamlsource``, its scalars in
``scalars``), validated into models (``models`` exports them all; by concept ``fields``, ``controls``, ``accounts``, ``rules``,
``notify_settings``, ``messages``; cron expressions in ``cron``), loaded with every problem located
(``load``; images checked in ``images``) and worded for an operator (``wording``), the template language and its
static check (``templates``), JSON Schemas (``schema``) and the ``init`` skeleton (``scaffold``).

May import: ``errors``, ``clock``, ``platforms``. Nothing above it (plan, publish, delivery, daemon, cli).
"""
