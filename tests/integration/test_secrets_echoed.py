"""Defect 7 of issue 8: a server that answers 401 and echoes the request's secrets (the ``Authorization``
header, the password in the login body) gets none of them into ``accounts``, ``send``, ``run`` or ``status``
output, nor into any file of the state folder (the ledger above all).

Both servers sit behind :class:`~.servers.fault_proxy.FaultProxy`, which forwards everything else and answers
the credential-bearing requests with the echo."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

from .servers import MastodonServer, PdsServer
from .servers.fault_proxy import FaultProxy
from .test_cli_send import MESSAGES, PASSWORD_ENV, SCHEDULE, TOKEN_ENV

pytestmark = pytest.mark.integration


@pytest.fixture
def proxies(mastodon_server: MastodonServer, pds: PdsServer) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    masto, bsky = FaultProxy.start(mastodon_server.url), FaultProxy.start(pds.url)
    try:
        yield masto, bsky
    finally:
        masto.stop()
        bsky.stop()


def test_echoed_secrets_reach_no_output_and_no_file(
    tmp_path: Path,
    mastodon_server: MastodonServer,
    pds: PdsServer,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    masto_proxy, bsky_proxy = proxies
    masto = mastodon_server.create_account(mastodon_server.unique_username("echo"))
    bsky = pds.create_account("echo")
    for path in ("/api/v1/accounts/verify_credentials", "/api/v1/statuses"):
        masto_proxy.inject(path, "echo", status=401, times=None)
    bsky_proxy.inject("com.atproto.server.createSession", "echo", status=401, times=None)

    folder = tmp_path / "campaign"
    (folder / "messages").mkdir(parents=True)
    (folder / "schedule.yaml").write_text(
        SCHEDULE.format(
            masto_url=masto_proxy.url,
            token_env=TOKEN_ENV,
            handle=bsky.handle,
            pds_url=bsky_proxy.url,
            password_env=PASSWORD_ENV,
        )
    )
    (folder / "messages" / "hello.yaml").write_text(MESSAGES.replace("SENTENCE", "Never forget."))
    (folder / "images").mkdir()
    PILImage.new("RGB", (30, 20), "orange").save(folder / "images" / "poster.png")
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLIFIER_")}
    env |= {TOKEN_ENV: masto.access_token, PASSWORD_ENV: bsky.password, "COLUMNS": "300"}
    env["AMPLIFIER_SECRETS_DIR"] = str(tmp_path / "no-secrets")
    secrets = [masto.access_token, bsky.password]
    assert all(len(s) >= 8 for s in secrets)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "amplifier", "--config", str(folder), "--state", str(state), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=folder,
            timeout=120,
            check=False,
        )
        return done.stdout + done.stderr

    outputs = {
        "accounts": run("accounts"),
        "accounts json": run("accounts", "--format", "json"),
        "send": run("send", "hello:masto:2027-10-30T10:00", "hello:bsky:2027-10-30T10:00"),
        "run": run("run", "--once", "--now", "2027-10-30T10:01", "--log-format", "json"),
        "status": run("status"),
        "status json": run("status", "--format", "json"),
    }
    # the servers' texts did arrive (so the test shows redaction, not silence)...
    assert "you sent" in outputs["accounts"], outputs["accounts"]
    assert masto_proxy.count("/api/v1/accounts/verify_credentials", "echo") >= 1
    assert bsky_proxy.count("com.atproto.server.createSession", "echo") >= 1
    assert "internal error" not in outputs["run"]
    assert "paused" in outputs["status"] or "paused" in outputs["run"], outputs["run"] + outputs["status"]
    # ...and no secret with them
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{name}: {text}"
        assert "Bearer " + masto.access_token[:8] not in text
    files = [p for p in state.rglob("*") if p.is_file() and p.parent.name != "keys"]
    assert any(p.name.startswith("ledger") for p in files)
    for file in files:
        data = file.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, file
