"""amplifier: a campaign's countdowns and calls to action, on schedule, to its own Mastodon and Bluesky accounts."""

__version__ = "0.1.0"
