"""The daemon: decides *when* and *in what order* due posts are delivered; the scheduler loop, hot reload of the
campaign files, pauses and the heartbeat, and the alerts it raises (through ``notify``).

May import: ``notify``, ``delivery`` and everything below them. Never ``cli``.
"""
