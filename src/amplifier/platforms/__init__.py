"""Per-platform text rules, pure and SDK-free: how Mastodon counts a status and links its entities
(``mastodon_text``), and Bluesky's grapheme limits and rich-text facets (``bluesky_text``).

The ground floor with ``errors`` and ``clock``: imports nothing else of amplifier.
"""
