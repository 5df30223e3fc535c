"""Image preparation: small files pass unchanged, big ones are re-encoded under the blob limit."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from amplifier.publish.media import ImageError, prepare_image


def save(path: Path, image: Image.Image, fmt: str, **kwargs: object) -> Path:
    image.save(path, fmt, **kwargs)
    return path


def test_small_image_is_sent_as_is(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", Image.new("RGB", (80, 40), "red"), "PNG")
    prepared = prepare_image(path)
    assert prepared.data == path.read_bytes()
    assert (prepared.mime, prepared.width, prepared.height, prepared.reencoded) == (
        "image/png",
        80,
        40,
        False,
    )


@pytest.mark.parametrize("limit", [1_000_000, 300_000, 50_000])
def test_big_image_is_reencoded_under_the_limit(tmp_path: Path, limit: int) -> None:
    noise = Image.effect_noise((1200, 900), 120).convert("RGB")
    path = save(tmp_path / "big.png", noise, "PNG")
    assert path.stat().st_size > limit
    prepared = prepare_image(path, max_bytes=limit)
    assert len(prepared.data) <= limit
    assert prepared.reencoded
    assert prepared.mime == "image/jpeg"
    assert (prepared.width, prepared.height) == (1200, 900)  # the aspect ratio of the original
    assert Image.open(io.BytesIO(prepared.data)).format == "JPEG"


def test_transparency_is_flattened_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (600, 600), (0, 0, 0, 0))
    path = save(tmp_path / "t.png", image, "PNG")
    prepared = prepare_image(path, max_bytes=min(path.stat().st_size - 1, 100_000))
    decoded = Image.open(io.BytesIO(prepared.data)).convert("RGB")
    assert decoded.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)


def test_exif_orientation_gives_the_displayed_aspect_ratio(tmp_path: Path) -> None:
    image = Image.new("RGB", (100, 50), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    path = save(tmp_path / "r.jpg", image, "JPEG", exif=exif)
    prepared = prepare_image(path)
    assert (prepared.width, prepared.height) == (50, 100)


def test_unreadable_image(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not an image"):
        prepare_image(path)
    with pytest.raises(ImageError, match="cannot read"):
        prepare_image(tmp_path / "missing.png")
