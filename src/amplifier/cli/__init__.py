"""The command line: one module per command or command group (``main``: the group, validate, schema, init,
completion; ``preview``; ``compose``; ``publish``: accounts, send; ``daemon``: run, status, history, pause, resume),
the options they share (``options``) and the renderers (``render``: JSON and the rich console; ``terminal``: the
preview for people; ``html`` and ``page_data``: the HTML page; ``ics``; ``progress``). Commands parse, call one
function and render its result.

May import every stage below it; nothing imports it.
"""
