"""The daemon: decides *when* and *in what order* due posts are delivered; the scheduler loop, hot reload of the
campaign files, pauses and the heartbeat.

May import: ``delivery`` and everything below it. Never ``cli``.
"""
