"""The command line: one module per command group (``main``: validate, preview, compose, schema, init; ``publish``:
accounts, send; ``daemon``: run, status, history, pause, resume) and the renderers (``render`` tables and JSON,
``html``, ``ics``, ``progress``). Commands parse, call one function and render its result.

May import every stage below it; nothing imports it.
"""
