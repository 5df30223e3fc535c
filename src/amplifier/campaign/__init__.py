"""The campaign files: ``schedule.yaml`` and ``messages/*.yaml`` read with positions (``yamlsource``), validated
into models (``models``), loaded with every problem located (``load``), the template language and its static check
(``templates``), JSON Schemas (``schema``) and the ``init`` skeleton (``scaffold``).

May import: ``errors``, ``clock``, ``platforms``. Nothing above it (plan, publish, delivery, daemon, cli).
"""
