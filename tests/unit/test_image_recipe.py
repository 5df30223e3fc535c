"""The image test's recipe (tests/integration/podman.py) without podman: which mirror, which pip settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration import podman


def test_debian_mirror_from_deb822_and_one_line_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMPLIFIER_TEST_DEBIAN_MIRROR", raising=False)
    folder = tmp_path / "sources.list.d"
    folder.mkdir()
    (folder / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n",
        encoding="utf-8",
    )
    (folder / "other.list").write_text(
        "deb https://packages.example/apt cloud-bookworm main\n", encoding="utf-8"
    )
    assert podman.debian_mirror([tmp_path / "sources.list", folder]) == "http://mirror.example/debian"

    (folder / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg] http://old.example/debian bookworm main\n",
        encoding="utf-8",
    )
    assert podman.debian_mirror([tmp_path / "sources.list", folder]) == "http://old.example/debian"

    (tmp_path / "sources.list").unlink()
    assert podman.debian_mirror([tmp_path / "sources.list", folder]) == podman.DEFAULT_MIRROR
    monkeypatch.setenv("AMPLIFIER_TEST_DEBIAN_MIRROR", "http://chosen.example/debian")
    assert podman.debian_mirror([folder]) == "http://chosen.example/debian"


def test_base_key_changes_with_the_recipe() -> None:
    assert podman.base_key("http://a.example/debian") == podman.base_key("http://a.example/debian")
    assert podman.base_key("http://a.example/debian") != podman.base_key("http://b.example/debian")


def test_pip_configuration_and_its_local_paths_are_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "pypi"
    (index / "simple").mkdir(parents=True)
    cert = tmp_path / "ca.crt"
    cert.write_text("not a real bundle", encoding="utf-8")
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nextra-index-url = file://{index}/simple\ntimeout = 99\n", encoding="utf-8")
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_CERT", str(cert))
    out = tmp_path / "out"
    out.mkdir()

    volumes = podman.pip_volumes(out)

    written = (out / "pip.conf").read_text(encoding="utf-8")
    assert "[global]" in written
    assert f"extra-index-url = file://{index}/simple" in written
    assert f"find-links = {wheels}" in written
    assert f"cert = {cert}" in written
    assert volumes[0] == f"{out / 'pip.conf'}:/etc/pip.conf:ro"
    # The index's parent (its pages link to ../files/), the wheels and the CA bundle, read-only at the same place.
    assert set(volumes[1:]) >= {f"{index}:{index}:ro", f"{wheels}:{wheels}:ro", f"{cert}:{cert}:ro"}
