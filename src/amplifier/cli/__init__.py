"""The command line: one module per command or command group (``main``: the group, validate, schema, init,
completion; ``preview``; ``compose``; ``publish``: accounts, send; ``gate``; ``correct``; ``retract``; ``daemon``:
run; ``status``: status, history; ``operator``: skip, cancel, retry, pause, resume; ``notify``; ``report``;
``ledger``), what they share (``options``: the global options, the moment and clock of a command, the one mapping
of an error to its exit code; ``writes``: an operator's write on published posts, post by post) and the renderers
(``render``: JSON and the rich console; ``terminal``: the preview for people; ``html``, ``html_page`` and
``page_data``: the HTML page; ``report_html``; ``status_tables``; ``ics``; ``progress``). Commands parse, call a
function of a lower stage and render its result.

May import every stage below it; nothing imports it.
"""
