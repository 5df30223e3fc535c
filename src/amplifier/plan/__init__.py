"""The plan: rules expanded into slots (``schedule``; a cron rule over a window in ``recurring``; zones, event times
and days left in ``localtime``), rendered and adapted to each platform (``adapt``,
``threads``) into planned posts (``post``), for a window (``planner``) or as a stream that never holds the whole
window (``stream``), with the template variables and account targets of ``context``; ``compose`` renders and adapts
one ad-hoc text for an account. Pure functions of the campaign and the clock.

May import: ``campaign``, ``platforms``, ``errors``, ``clock``. Nothing above it (publish, delivery, daemon, cli).
"""
