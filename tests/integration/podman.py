"""Building the real image with Debian's podman, without a container registry and without running a container.

The Dockerfile's base image (``PYTHON_IMAGE``) is made here from Debian's packages: ``debootstrap --variant=minbase
--include=python3,python3-venv bookworm`` from the Debian mirror this machine's apt uses, tarred into the test
cache (``${AMPLIFIER_TEST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/amplifier-tests}/image-base/``, keyed by the recipe)
and imported with ``podman import``. Builds use ``--isolation chroot`` (no container runtime needed) and the host's
network; pip inside the build gets the host's pip configuration (``pip config list``: files and ``PIP_*``
variables) as an ``/etc/pip.conf``, with every local path that configuration names (CA bundle, find-links,
``file://`` indexes, constraints) mounted read-only at the same place.

Main API::

    ensure_tools()                       # apt-get installs podman + debootstrap if missing; skips without apt
    base = debian_python_base()          # "localhost/amplifier-test-base:<key>", made or reused
    build(context, tag=..., build_args={"PYTHON_IMAGE": base}, volumes=pip_volumes(folder))
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from .servers.pds import cache_root

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
TOOLS = {"podman": "podman", "debootstrap": "debootstrap"}
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# The python image sets these; an imported root file system has no configuration at all.
BASE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)


class ImageBuildError(RuntimeError):
    """A step of making the base or building an image failed; the message holds the command's output tail."""


def ensure_tools() -> None:
    """podman and debootstrap on PATH: installed with apt-get when missing; the test is skipped without apt."""
    missing = [package for command, package in TOOLS.items() if shutil.which(command) is None]
    if not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        missing.append("debian-archive-keyring")  # debootstrap checks bookworm's signatures with it
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.skip(f"{', '.join(missing)} missing and no apt-get to install them with")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "--no-install-recommends", *missing]):
        _run(argv, env=env, step=f"installing {', '.join(missing)}", timeout=900)


def debian_mirror(sources: Iterable[Path] = APT_SOURCES) -> str:
    """The Debian archive this machine's apt uses (``AMPLIFIER_TEST_DEBIAN_MIRROR`` overrides it)."""
    explicit = os.environ.get("AMPLIFIER_TEST_DEBIAN_MIRROR")
    if explicit:
        return explicit
    for uri, suites in _apt_entries(sources):
        if "bookworm" in suites and re.search(r"/debian/?$", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_entries(sources: Iterable[Path]) -> list[tuple[str, set[str]]]:
    files: list[Path] = []
    for source in sources:
        files.extend(sorted(source.glob("*")) if source.is_dir() else [source] if source.is_file() else [])
    entries: list[tuple[str, set[str]]] = []
    for file in files:
        text = file.read_text(encoding="utf-8", errors="replace")
        if file.suffix == ".sources":  # deb822: paragraphs of "Key: value"
            for paragraph in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", paragraph, re.MULTILINE))
                if "deb" in fields.get("Types", "").split():
                    for uri in fields.get("URIs", "").split():
                        entries.append((uri, set(fields.get("Suites", "").split())))
        elif file.suffix == ".list" or file.name == "sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], {words[2]}))
    return entries


def base_key(mirror: str) -> str:
    recipe = "\n".join([SUITE, "minbase", ",".join(BASE_PACKAGES), mirror, *BASE_CHANGES])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def debian_python_base() -> str:
    """The base image's name: imported from the cached root file system tar, made first if needed."""
    mirror = debian_mirror()
    key = base_key(mirror)
    name = f"localhost/amplifier-test-base:{key}"
    if _podman_ok("image", "exists", name):
        return name
    folder = cache_root() / "image-base"
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"debian-{SUITE}-python3-{key}.tar"
    with (folder / f"{key}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run making the same base: wait for it
        if not tarball.exists():
            _debootstrap(tarball, mirror)
        if not _podman_ok("image", "exists", name):
            changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
            _run(["podman", "import", "--quiet", *changes, str(tarball), name], step="podman import")
    return name


def _debootstrap(tarball: Path, mirror: str) -> None:
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            step=f"debootstrap {SUITE} from {mirror}",
            timeout=1200,
        )
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        partial = Path(scratch) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], step="tar")
        partial.rename(tarball)  # complete or absent: an interrupted run leaves no half tar behind


def pip_volumes(folder: Path) -> list[str]:
    """``-v`` values giving pip in the build this machine's pip configuration (written into ``folder``)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    ).stdout
    options: dict[str, dict[str, str]] = {}
    for section, key, value in re.findall(r"^([^.\s]*)\.([\w-]+)='(.*)'$", listed, re.MULTILINE):
        target = "global" if section == ":env:" else section  # PIP_* variables: global options
        options.setdefault(target, {})[key] = value
    cert = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")
    if cert and "cert" not in options.get("global", {}):
        options.setdefault("global", {})["cert"] = cert
    lines = []
    for section, values in options.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in values.items())
    conf = folder / "pip.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    volumes = [f"{conf}:/etc/pip.conf:ro"]
    for path in sorted(_local_paths(value for values in options.values() for value in values.values())):
        volumes.append(f"{path}:{path}:ro")
    return volumes


def _local_paths(values: Iterable[str]) -> set[Path]:
    found = set()
    for value in values:
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if word.startswith("file://") and path.name == "simple":
                path = path.parent  # a local index: its pages link to files beside simple/ (../files/...)
            if path.is_absolute() and path.exists() and path != Path("/"):
                found.add(path)
    return found


def build(
    context: Path,
    *,
    tag: str | None = None,
    dockerfile: Path | None = None,
    build_args: dict[str, str] | None = None,
    volumes: Sequence[str] = (),
    extra: Sequence[str] = (),
    timeout: float = 1200,
) -> str:
    """``podman build`` (chroot isolation, host network, Docker format); its output, or :class:`ImageBuildError`."""
    argv = ["podman", "build", "--isolation", "chroot", "--network", "host", "--format", "docker"]
    if tag:
        argv += ["--tag", tag]
    if dockerfile:
        argv += ["--file", str(dockerfile)]
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    for volume in volumes:
        argv += ["--volume", volume]
    return _run([*argv, *extra, str(context)], step=f"podman build {context}", timeout=timeout)


def inspect(image: str) -> str:
    """``podman image inspect``'s JSON (a list of one)."""
    return _run(["podman", "image", "inspect", image], step="podman image inspect")


def _podman_ok(*args: str) -> bool:
    return subprocess.run(["podman", *args], capture_output=True, timeout=120, check=False).returncode == 0


def _run(argv: list[str], *, step: str, timeout: float = 300, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=env, stdin=subprocess.DEVNULL
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise ImageBuildError(f"{step} failed (exit {result.returncode}):\n{output[-6000:]}")
    return output
