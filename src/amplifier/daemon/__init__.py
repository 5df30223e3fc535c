"""The daemon: decides *when* and *in what order* due posts are delivered; the scheduler loop, hot reload of the
campaign files, pauses and the heartbeat, the alerts it raises (through ``notify``), read-back and follow-up
jobs (``readback``, ``followups``).

May import: ``notify``, ``delivery`` and everything below them. Never ``cli``.
"""
