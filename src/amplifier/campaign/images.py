"""Images of message sets, checked when the campaign is loaded rather than when a post is due.

:func:`image_problem` resolves an image's path inside the campaign folder (an absolute path, ``..`` or a symlink
that leads out of it is refused: its bytes would be uploaded to an instance) and opens only the file's header with
Pillow: the file must be a PNG, JPEG, GIF or WebP image, of the type its name says, and of a sane number of pixels
(a header claiming 900 million pixels is a decompression bomb, not a photo).
"""

from __future__ import annotations

import mimetypes
import warnings
from pathlib import Path

MAX_PIXELS = 50_000_000
"""Most pixels an image may have (a 50-megapixel photo); beyond it the header is not believed."""
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def image_problem(root: Path, relative: str) -> str | None:
    """What is wrong with the image at ``relative`` (to the campaign folder ``root``), or None."""
    from PIL import Image, UnidentifiedImageError

    if Path(relative).is_absolute() or relative.startswith("~"):
        return f"{relative}: write the image's path relative to the campaign folder"
    try:
        inside = root.resolve()
        file = (root / relative).resolve()
    except (OSError, RuntimeError):
        return f"{relative}: a link that loops back on itself"
    if not file.is_relative_to(inside):
        return f"{relative} is outside the campaign folder: images must be inside it"
    if not file.is_file():
        return f"image file not found: {relative}"
    named = mimetypes.guess_type(file.name)[0] or ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                fmt = (image.format or "").upper()
                width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"{relative}: the image claims too many pixels (at most {MAX_PIXELS:,})"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return f"{relative} is not an image amplifier can read: use PNG, JPEG, GIF or WebP"
    if fmt not in FORMATS:
        return f"not a supported image type: {relative} ({fmt or 'unknown'}); use PNG, JPEG, GIF or WebP"
    if width * height > MAX_PIXELS:
        return f"{relative}: the image claims {width}x{height} pixels, more than {MAX_PIXELS:,}"
    if named != FORMATS[fmt]:
        extension = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp"}[fmt]
        return f"{relative} is a {fmt} image but its name says otherwise: rename it to end in {extension}"
    return None
