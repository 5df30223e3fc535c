"""The HTML preview in a real browser: Debian's Chromium, headless, loads the page from a file.

The DOM is read after the page's JavaScript ran (``--dump-dom``): the cards, a highlighted tag, the
direction the browser computed for a Sorani post, the filters (driven by the URL fragment); and a screenshot
is taken that a person can look at. Chromium is installed with apt-get when it is missing (root only); the
test is skipped only where apt-get is not there to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from tests.conftest import ROOT, Result

pytestmark = pytest.mark.integration

RunCli = Callable[..., Result]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
WINDOW = (
    "2027-10-28",
    "2027-11-02",
)  # 31 posts of the example campaign, a thread, an image, Sorani and Arabic
POSTS_IN_WINDOW = 31

# Appended to a copy of the page: records what the browser computed, as attributes --dump-dom shows.
PROBE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("img").forEach(function (img) {
    img.setAttribute("data-loaded", img.naturalWidth + "x" + img.naturalHeight);
  });
});
document.querySelectorAll("p.text").forEach(function (p) {
  p.setAttribute("data-computed-dir", getComputedStyle(p).direction);
});
document.querySelectorAll("span.tag").forEach(function (tag) {
  var text = tag.closest("p.text");
  tag.setAttribute("data-highlighted", String(getComputedStyle(tag).color !== getComputedStyle(text).color));
});
</script>
</body>"""


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and apt-get is not available to install it")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed; installing it needs root: apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
        capture_output=True,
        timeout=900,
    )
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium, but it is not on PATH"
    return found


def browse(chromium: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="amplifier-chromium-") as profile:
        result = subprocess.run(
            [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("preview") / "preview.html"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "amplifier"),
            "preview",
            "-c",
            str(ROOT / "schedule.yaml"),
            "--from",
            WINDOW[0],
            "--to",
            WINDOW[1],
            "--format",
            "html",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_dom_after_the_scripts_ran(chromium: str, page: Path) -> None:
    probed = page.with_name("probed.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE), encoding="utf-8")
    soup = BeautifulSoup(browse(chromium, "--dump-dom", probed.as_uri()), "html.parser")

    body = soup.body
    assert body is not None
    assert body.get("data-ready") == "1"  # the page's own script ran
    posts = soup.select("article.post")
    assert len(posts) == POSTS_IN_WINDOW
    assert not [post for post in posts if post.has_attr("hidden")]
    shown = soup.select_one("#shown")
    assert shown is not None
    assert shown.get_text() == str(POSTS_IN_WINDOW)
    assert len(soup.select("select[data-filter]")) == 3

    sorani = soup.select('article.post[data-lang="ckb"] p.text')
    assert sorani
    assert {p["data-computed-dir"] for p in sorani} == {"rtl"}  # dir="auto" on Arabic script
    arabic = soup.select('article.post[data-lang="ar"] p.text')
    assert arabic
    assert {p["data-computed-dir"] for p in arabic} == {"rtl"}
    english = soup.select('article.post[data-lang="en"] p.text')
    assert {p["data-computed-dir"] for p in english} == {"ltr"}

    tags = soup.select('article.post[data-lang="ckb"] span.tag')
    assert [tag.get_text() for tag in tags[:2]] == ["#Riseup4Rojava", "#WorldKobaneDay"]
    assert {tag["data-highlighted"] for tag in soup.select("span.tag")} == {"true"}

    thread = soup.select("article.thread")
    assert thread
    assert all(len(article.select(".card")) == 3 for article in thread)

    # Each image is in the page once; the page's script shows it in every card that has it, decoded.
    images = soup.select("img[data-image]")
    assert len(images) > 1
    assert len({img["data-image"] for img in images}) == 1
    assert {img["src"][:22] for img in images} == {"data:image/png;base64,"}
    assert all(img["data-loaded"] != "0x0" for img in images)


def test_filters_follow_the_url_fragment(chromium: str, page: Path) -> None:
    soup = BeautifulSoup(
        browse(chromium, "--dump-dom", page.as_uri() + "#platform=bluesky&lang=ckb"), "html.parser"
    )
    visible = [post for post in soup.select("article.post") if not post.has_attr("hidden")]
    assert visible
    assert {(post["data-platform"], post["data-lang"]) for post in visible} == {("bluesky", "ckb")}
    shown = soup.select_one("#shown")
    assert shown is not None
    assert shown.get_text() == str(len(visible))
    for day in soup.select("section.day"):
        has_visible = any(not post.has_attr("hidden") for post in day.select("article.post"))
        assert day.has_attr("hidden") is not has_visible

    nothing = BeautifulSoup(
        browse(chromium, "--dump-dom", page.as_uri() + "#account=mastodon-de&lang=ckb"), "html.parser"
    )
    assert all(post.has_attr("hidden") for post in nothing.select("article.post"))
    message = nothing.select_one(".none-shown")
    assert message is not None
    assert not message.has_attr("hidden")


def test_screenshot_a_person_can_look_at(chromium: str, page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "preview.png"
    browse(chromium, "--window-size=1000,1600", f"--screenshot={shot}", page.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1000, 1600)
        colors = {color for _count, color in image.convert("RGB").getcolors(maxcolors=1_000_000) or []}
    assert len(colors) > 200  # text, cards and an image, not a blank page
    assert (0x63, 0x64, 0xFF) in colors  # Mastodon's accent
    assert (0x11, 0x85, 0xFE) in colors  # Bluesky's accent
