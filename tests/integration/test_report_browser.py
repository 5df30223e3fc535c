"""The report page in a real browser (headless Chromium, as ``test_browser.py`` loads the preview): the DOM
the browser built (the SVG charts, the event marked, the cards with links, Arabic text right to left) and a
screenshot with the charts' colours in it."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from amplifier.cli.main import cli
from tests.integration.test_browser import browse, chromium
from tests.unit.test_report import campaign_dir

__all__ = ["campaign_dir", "chromium"]  # fixtures

pytestmark = pytest.mark.integration

PROBE = """<script>
document.querySelectorAll("p.text").forEach(function (p) {
  p.setAttribute("data-computed-dir", getComputedStyle(p).direction);
});
document.querySelectorAll("svg").forEach(function (svg) {
  var box = svg.getBoundingClientRect();
  svg.setAttribute("data-size", Math.round(box.width) + "x" + Math.round(box.height));
});
</script>
</body>"""


@pytest.fixture
def page(campaign_dir: Path) -> Path:
    out = campaign_dir / "report.html"
    result = CliRunner().invoke(
        cli,
        ["--config", str(campaign_dir / "schedule.yaml"), "--state", str(campaign_dir / "state"), "report",
         "--now", "2027-11-01T12:00", "--from", "2027-10-28T00:00", "--format", "html", "-o", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_report_dom(chromium: str, page: Path) -> None:
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    soup = BeautifulSoup(browse(chromium, "--dump-dom", probed.as_uri()), "html.parser")

    assert not soup.select("script[src], link[href], img[src]")  # nothing to fetch
    bars = soup.select("#over-time rect.posts")
    assert [(b["data-day"], b["data-published"]) for b in bars] == [
        ("2027-10-29", "2"),
        ("2027-10-30", "2"),
        ("2027-10-31", "2"),
        ("2027-11-01", "0"),  # the event's day, in the chart though nothing was due on it
    ]
    assert [t.get_text() for t in soup.select("#over-time text.event-label")] == ["The Day"]
    assert {r["data-key"] for r in soup.select("#by-lang rect")} == {"ar", "en"}
    assert {r["data-key"] for r in soup.select("#by-platform rect")} == {"bluesky", "mastodon"}
    assert all(svg["data-size"] != "0x0" for svg in soup.select("svg"))
    total = soup.select_one('[data-total="likes"] b')
    assert total is not None
    assert total.get_text() == "15"

    cards = soup.select("#top article.card")
    assert [c["data-post"] for c in cards][:2] == [
        "countdown:sky:2027-10-29T10:00",
        "countdown:masto:2027-10-29T10:00",
    ]
    arabic = cards[0].select_one("p.text")
    assert arabic is not None
    assert arabic["data-computed-dir"] == "rtl"
    english = cards[1].select_one("p.text")
    assert english is not None
    assert english["data-computed-dir"] == "ltr"
    assert cards[0].select_one("a")["href"] == "https://example.test/0"  # type: ignore[index]
    assert [t["data-lang"] for t in soup.select("#variants table")] == ["ar", "en"]


def test_report_screenshot(chromium: str, page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    browse(chromium, "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1000, 1400)
        colors = {color for _count, color in image.convert("RGB").getcolors(maxcolors=1_000_000) or []}
    assert len(colors) > 100  # text, charts and cards, not a blank page
    assert (0x63, 0x64, 0xFF) in colors  # the posts' bars
    assert (0xE0, 0x70, 0x2B) in colors  # engagement
