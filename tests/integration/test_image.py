"""The real image, built with podman from the Dockerfile and exercised as its own user.

The base image is Debian bookworm's python3 (see :mod:`tests.integration.podman`): the machines the tests run on
reach Debian's archive and PyPI, not a container registry. The image is built as a user would build it (the
repository's Dockerfile and build context), then a test-only stage (``image_check/``) ``FROM`` it runs the
image's commands as uid 10001 with the campaigns mounted read-only and the secrets mounted the way Docker
Compose mounts them (one file each in /run/secrets, the host file's owner and mode kept), and the results are
taken out with ``podman build --output``.

First run on a machine: the Debian base is made (debootstrap, about a minute), then cached; later runs reuse it
and podman's layer cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.conftest import BASE_SCHEDULE, ROOT, write_campaign

from . import podman
from .servers.mastodon import MastodonServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGE = "localhost/amplifier-test:latest"
UID = 10001
QUIET = "2026-11-20T12:00"  # before any post of the campaigns below: nothing is due
# What docs/deploy.md prescribes for Compose's file secrets (bind mounts keep the host's owner and mode):
FOLDER_MODE = 0o700  # the secrets folder: nobody else on the host gets to the files
SECRET_MODE = 0o444  # the files: readable by the container's user whatever the host's owner is
OWNED_MODE = 0o400  # or, with root on the host: owned by the image's user (chown 10001:10001) and 0400
OLD_MODE = 0o600  # what the docs said before: the host's owner only, which the image's user is not


@dataclass(frozen=True)
class Built:
    image: str
    seconds: float


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The repository's Dockerfile built on the Debian base, as ``localhost/amplifier-test:latest``."""
    podman.ensure_tools()
    started = time.monotonic()
    base = podman.debian_python_base()
    folder = tmp_path_factory.mktemp("pip")
    iidfile = folder / "image-id"
    podman.build(
        ROOT,
        tag=IMAGE,
        build_args={"PYTHON_IMAGE": base},
        volumes=podman.pip_volumes(folder),
        extra=["--iidfile", str(iidfile)],
    )
    # By its id from here on: another checkout's test run may move the tag meanwhile.
    image_id = iidfile.read_text(encoding="utf-8").strip().removeprefix("sha256:")
    return Built(image_id, time.monotonic() - started)


@dataclass(frozen=True)
class Step:
    code: int
    out: str
    err: str


class Checked:
    def __init__(self, folder: Path, tokens: dict[str, str]) -> None:
        self.folder = folder
        self.tokens = tokens

    def __getitem__(self, name: str) -> Step:
        def read(suffix: str) -> str:
            return (self.folder / f"{name}.{suffix}").read_text(encoding="utf-8")

        return Step(int(read("rc")), read("out"), read("err"))

    def all_text(self) -> str:
        return "".join(path.read_text(encoding="utf-8") for path in sorted(self.folder.iterdir()))


def secrets_schedule(server: str, names: dict[str, str]) -> str:
    accounts = "".join(
        f"  {account}:\n    platform: mastodon\n    instance: {server}\n    token_env: {variable}\n"
        for account, variable in names.items()
    )
    schedule = re.sub(r"^accounts:\n(?:  .*\n)+", "accounts:\n" + accounts, BASE_SCHEDULE, flags=re.MULTILINE)
    return schedule


@pytest.fixture(scope="module")
def checked(
    built: Built, mastodon_server: MastodonServer, tmp_path_factory: pytest.TempPathFactory
) -> Checked:
    """The image's commands run in a build stage ``FROM`` the image; the steps' results (see check.sh)."""
    work = tmp_path_factory.mktemp("image-check")
    campaign = work / "campaign"
    campaign.mkdir()
    for name in ("schedule.yaml", "messages", "images", "schema"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, campaign / name)
        else:
            shutil.copy2(source, campaign / name)

    accounts = {
        "masto-en": "AMPLIFIER_MASTODON_EN_TOKEN",  # 0444 in a 0700 folder (the docs' recipe)
        "masto-de": "AMPLIFIER_MASTODON_DE_TOKEN",  # chown 10001:10001, 0400 (the docs' alternative)
        "masto-tr": "AMPLIFIER_MASTODON_TR_TOKEN",  # 0600, the host's owner (the old docs): unreadable
        "masto-ar": "AMPLIFIER_MASTODON_AR_TOKEN",  # no file at all
    }
    campaigns = work / "secret-campaigns"
    write_campaign(campaigns / "all", secrets_schedule(mastodon_server.url, accounts))
    ok = {account: accounts[account] for account in ("masto-en", "masto-de")}
    write_campaign(campaigns / "ok", secrets_schedule(mastodon_server.url, ok))

    secrets = work / "secrets"
    secrets.mkdir()
    tokens = {}
    volumes = [f"{campaign}:/campaign:ro", f"{campaigns}:/secret-campaigns:ro"]
    for account, mode, owner in (
        ("masto-en", SECRET_MODE, 0),
        ("masto-de", OWNED_MODE, UID),
        ("masto-tr", OLD_MODE, 0),
    ):
        variable = accounts[account]
        tokens[variable] = mastodon_server.create_account().access_token
        path = secrets / variable
        path.write_text(tokens[variable], encoding="utf-8")
        os.chown(path, owner, owner)
        path.chmod(mode)
        volumes.append(f"{path}:/run/secrets/{variable}:ro")
    secrets.chmod(FOLDER_MODE)

    out = work / "out"
    podman.build(
        Path(__file__).parent / "image_check",
        build_args={"IMAGE": built.image},
        volumes=volumes,
        extra=["--no-cache", "--output", f"type=local,dest={out}"],
    )
    return Checked(out, tokens)


def test_the_image_keeps_its_health_check_user_and_entry_point(built: Built) -> None:
    (image,) = json.loads(podman.inspect(built.image))
    assert image["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"  # --format docker
    assert image["Healthcheck"]["Test"][:4] == [
        "CMD",
        "amplifier",
        "status",
        "--check",
    ]  # OCI has no field for it
    config = image["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["amplifier"]
    assert config["Cmd"] == ["run"]
    assert "/state" in config["Volumes"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["AMPLIFIER_CONFIG"] == "/campaign/schedule.yaml"
    assert env["AMPLIFIER_STATE"] == "/state"


def test_commands_run_as_the_image_user_on_a_read_only_campaign(checked: Checked) -> None:
    assert checked["id"].out.strip() == str(UID)

    validate = checked["validate"]
    assert validate.code == 0, validate.err
    assert "valid: 7 accounts" in validate.out

    preview = checked["preview"]
    assert preview.code == 0, preview.err
    assert len(json.loads(preview.out)["posts"]) == 7

    assert checked["write-campaign"].code != 0  # mounted read-only
    assert "Read-only file system" in checked["write-campaign"].err
    assert checked["write-state"].code == 0  # the state volume belongs to the image's user


def test_installed_versions_are_the_pinned_ones(checked: Checked) -> None:
    freeze = checked["freeze"]
    assert freeze.code == 0, freeze.err
    installed = dict(line.split("==", 1) for line in freeze.out.split() if "==" in line)
    environment = {"python_full_version": checked["python"].out.strip(), "python_version": "3.11"}
    pinned: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = Requirement(line)
            if requirement.marker is None or Marker(str(requirement.marker)).evaluate(environment):
                pinned[canonical(requirement.name)] = str(requirement.specifier).removeprefix("==")
    found = {
        canonical(name): version for name, version in installed.items() if canonical(name) != "amplifier"
    }
    for name in ("pip", "setuptools"):
        found.pop(name, None)  # the venv's own tools, not dependencies
    assert {"atproto", "mastodon-py", "pydantic", "apprise"} <= set(found)
    assert {name: pinned.get(name) for name in found} == found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_secrets_are_read_with_the_permissions_the_docs_prescribe(checked: Checked) -> None:
    listing = checked["secrets"]
    assert listing.code == 0, listing.err
    accounts = checked["accounts"]
    assert accounts.code == 3, accounts.err  # some accounts fail: exit 3
    by_account = {entry["account"]: entry for entry in json.loads(accounts.out)["accounts"]}
    assert by_account["masto-en"]["ok"] is True  # read from /run/secrets and accepted by the server
    assert by_account["masto-de"]["ok"] is True
    assert by_account["masto-tr"]["ok"] is False
    assert (
        "AMPLIFIER_MASTODON_TR_TOKEN could not be read (PermissionError)" in by_account["masto-tr"]["error"]
    )
    assert by_account["masto-ar"]["ok"] is False
    assert "AMPLIFIER_MASTODON_AR_TOKEN is not set" in by_account["masto-ar"]["error"]
    everything = checked.all_text()
    for token in checked.tokens.values():
        assert token not in everything


def test_health_check_passes_after_a_pass_with_every_secret(checked: Checked) -> None:
    assert checked["run-ok"].code == 0, checked["run-ok"].err
    check = checked["check-ok"]
    assert check.code == 0, check.out + check.err
    assert json.loads(check.out)["healthy"] is True


def test_health_check_fails_while_a_secret_is_missing(checked: Checked) -> None:
    assert checked["run-all"].code == 0, checked["run-all"].err
    check = checked["check-all"]
    assert check.code != 0, check.out
    text = check.out + check.err
    assert "AMPLIFIER_MASTODON_AR_TOKEN" in text
    assert "AMPLIFIER_MASTODON_TR_TOKEN" in text
