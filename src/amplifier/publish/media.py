"""Images for upload: size checks, re-encoding and aspect ratio (Pillow).

Bluesky refuses a blob over 1,000,000 bytes (the lexicon says 2,000,000 now, the docs still 1 MB; we keep to
the smaller). :func:`prepare_image` returns the file's own bytes when they fit; otherwise it re-encodes the
image as JPEG at decreasing quality, then downscales it step by step, until it fits. The aspect ratio is the
image's own, after its EXIF orientation. :func:`upload_problems` runs the same checks on a campaign's images for
``validate``, so an image that cannot go out is found before its post is due.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amplifier.campaign.load import Campaign
    from amplifier.errors import Problem

MAX_BLOB_BYTES = 1_000_000
MASTODON_IMAGE_LIMIT = 16 * 1024 * 1024
"""Mastodon's default ``image_size_limit`` (an instance may set another; it is read when publishing)."""
_QUALITIES = (90, 85, 80, 75, 70, 60, 50)
_MIN_SIDE = 64


class ImageError(ValueError):
    """The image cannot be read or cannot be made small enough."""


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    mime: str
    width: int
    height: int
    reencoded: bool = False


def prepare_image(
    source: Path | bytes, mime: str | None = None, *, max_bytes: int = MAX_BLOB_BYTES
) -> PreparedImage:
    """The bytes to upload for ``source`` (a path or the image's bytes), at most ``max_bytes`` long."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, Path):
        try:
            data = source.read_bytes()
        except OSError as exc:
            raise ImageError(f"{source}: cannot read the image: {exc.strerror}") from exc
        label = str(source)
    else:
        data = source
        label = "image"
    try:
        with Image.open(io.BytesIO(data)) as opened:
            fmt = (opened.format or "").upper()
            image = ImageOps.exif_transpose(opened)
            image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"{label}: not an image Pillow can read ({exc})") from exc
    width, height = image.size
    native = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}.get(fmt)
    if len(data) <= max_bytes and native is not None:
        return PreparedImage(data, mime or native, width, height)

    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    elif image.mode != "RGB":
        image = image.convert("RGB")

    current = image
    while True:
        for quality in _QUALITIES:
            out = io.BytesIO()
            current.save(out, format="JPEG", quality=quality, optimize=True, progressive=True)
            if out.tell() <= max_bytes:
                return PreparedImage(out.getvalue(), "image/jpeg", width, height, reencoded=True)
        new_size = (int(current.width * 0.75), int(current.height * 0.75))
        if min(new_size) < _MIN_SIDE:
            raise ImageError(f"{label}: cannot make the image smaller than {max_bytes} bytes")
        current = image.resize(new_size, Image.Resampling.LANCZOS)


def upload_problems(campaign: Campaign) -> list[Problem]:
    """The campaign's images that cannot be uploaded where they are posted: over Mastodon's usual size limit, or
    not readable whole or not shrinkable to Bluesky's blob limit by :func:`prepare_image`."""
    from amplifier.campaign.load import needs

    required = needs(campaign)
    problems: list[Problem] = []
    for set_id, message_set in campaign.message_sets.items():
        platforms = {platform for found in required.get(set_id, {}).values() for platform in found}
        for index, image in enumerate(message_set.images):
            file = campaign.root / image.path
            try:
                size = file.stat().st_size
            except OSError:
                continue  # the loader reports a missing file
            problem = None
            if "mastodon" in platforms and size > MASTODON_IMAGE_LIMIT:
                problem = f"{image.path} is {size / 1_048_576:.1f} MB, over Mastodon's usual limit of 16 MB"
            elif "bluesky" in platforms and size > MAX_BLOB_BYTES:
                try:
                    prepare_image(file, max_bytes=MAX_BLOB_BYTES)
                except ImageError:
                    problem = (
                        f"{image.path} cannot be read whole or made smaller than Bluesky's limit of 1 MB"
                    )
            if problem is not None:
                problems.append(campaign.set_problem(set_id, ("images", index, "path"), problem))
    return problems
