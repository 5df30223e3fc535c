"""The plan: rules expanded into slots (``schedule``), rendered and adapted to each platform (``adapt``,
``threads``) into planned posts (``post``), for a window (``planner``), or
as a stream that never holds the whole window (``stream``). Pure functions of the campaign and the clock.

May import: ``campaign``, ``platforms``, ``errors``, ``clock``. Nothing above it (publish, delivery, daemon, cli).
"""
