"""Per-platform code: pure text rules (``*_text``) and publishers."""
