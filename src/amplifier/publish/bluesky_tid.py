"""Record keys of Bluesky posts: a deterministic TID per post and part (:func:`record_key`).

Writing a part at a key derived from the post's stable id makes a retry a no-op (``putRecord`` at the same key with
the same record), so a post is never written twice.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import regex

TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_PATTERN = regex.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def encode_tid(micros: int, clock_id: int) -> str:
    """The TID for a timestamp in microseconds since the epoch and a 10-bit clock id."""
    if not 0 <= micros < 1 << 53:
        raise ValueError("a TID timestamp is 53 bits of microseconds")
    if not 0 <= clock_id < 1 << 10:
        raise ValueError("a TID clock id is 10 bits")
    value = (micros << 10) | clock_id
    chars = []
    for _ in range(13):
        chars.append(TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode_tid(tid: str) -> tuple[int, int]:
    """``(microseconds, clock_id)`` of a TID."""
    if not TID_PATTERN.match(tid):
        raise ValueError(f"not a TID: {tid!r}")
    value = 0
    for char in tid:
        value = (value << 5) | TID_ALPHABET.index(char)
    return value >> 10, value & 1023


def record_key(post_id: str, index: int, at: datetime) -> str:
    """The deterministic record key (a valid TID) of part ``index`` of post ``post_id``, planned at ``at``.

    A TID is 53 bits of microseconds since the epoch then 10 bits of clock id, in base32-sortable. We take:

    * timestamp = the slot time (whole seconds) + an offset below one second taken from SHA-256(post id)
      + the part index (so a thread's parts sort in order and stay within the slot's second);
    * clock id = 10 more bits of the same hash.

    The key is near the slot time (Bluesky sorts by it) and the same post id always gives the same key,
    while two posts of one account in the same second differ in 30 hash bits.
    """
    digest = hashlib.sha256(post_id.encode("utf-8")).digest()
    offset = int.from_bytes(digest[:4], "big") % 999_000  # leaves room for up to 1000 parts in the second
    clock_id = int.from_bytes(digest[4:6], "big") & 0x3FF
    seconds = int(at.timestamp())
    return encode_tid(seconds * 1_000_000 + offset + index, clock_id)


def public_url(handle_or_did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{handle_or_did}/post/{rkey}"
