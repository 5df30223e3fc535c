"""Credentials from the environment, a .env file and a secrets folder; missing ones named, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from amplifier.errors import CredentialsError, ExitCode
from amplifier.publish.secrets import SECRETS_DIR_ENV, SecretSources

NAME = "AMP_UNIT_SECRET"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    monkeypatch.delenv(SECRETS_DIR_ENV, raising=False)


def sources(tmp_path: Path, *, campaign: bool = True) -> SecretSources:
    (tmp_path / "campaign").mkdir(exist_ok=True)
    (tmp_path / "cwd").mkdir(exist_ok=True)
    return SecretSources.for_campaign(
        tmp_path / "campaign" if campaign else None,
        cwd=tmp_path / "cwd",
        environ={SECRETS_DIR_ENV: str(tmp_path / "secrets")},
    )


def test_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "from-env")
    assert sources(tmp_path).get(NAME).get_secret_value() == "from-env"


def test_from_the_campaign_env_file(tmp_path: Path) -> None:
    src = sources(tmp_path)
    (tmp_path / "campaign" / ".env").write_text(f"OTHER=1\n{NAME}=from-dotenv\n")
    assert src.get(NAME).get_secret_value() == "from-dotenv"


def test_from_the_cwd_env_file(tmp_path: Path) -> None:
    src = sources(tmp_path)
    (tmp_path / "cwd" / ".env").write_text(f"{NAME}='from-cwd'\n")
    assert src.get(NAME).get_secret_value() == "from-cwd"


def test_from_the_secrets_folder(tmp_path: Path) -> None:
    src = sources(tmp_path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / NAME).write_text("from-file\n")
    assert src.get(NAME).get_secret_value() == "from-file"


def test_unreadable_secret_file_is_a_credentials_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Docker secret bind-mounted with the host's owner and mode 0600, read by the image's user: the tests run as
    # root (who reads everything), so the refusal is simulated. tests/integration/test_image.py has the real one.
    src = sources(tmp_path)
    (tmp_path / "secrets").mkdir()
    secret = tmp_path / "secrets" / NAME
    secret.write_text("the-value\n")
    read_text = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self == secret:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(CredentialsError) as caught:
        src.get(NAME)
    message = str(caught.value)
    assert f"the secret {NAME} could not be read (PermissionError)" in message
    assert "readable by the user amplifier runs as" in message
    assert "the-value" not in message


def test_precedence_env_then_campaign_dotenv_then_cwd_dotenv_then_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / NAME).write_text("folder")
    assert sources(tmp_path).get(NAME).get_secret_value() == "folder"
    (tmp_path / "cwd" / ".env").write_text(f"{NAME}=cwd\n")
    assert sources(tmp_path).get(NAME).get_secret_value() == "cwd"
    (tmp_path / "campaign" / ".env").write_text(f"{NAME}=campaign\n")
    assert sources(tmp_path).get(NAME).get_secret_value() == "campaign"
    monkeypatch.setenv(NAME, "env")
    assert sources(tmp_path).get(NAME).get_secret_value() == "env"


def test_default_secrets_folder_is_run_secrets(tmp_path: Path) -> None:
    assert SecretSources.for_campaign(None, cwd=tmp_path, environ={}).secrets_dir == Path("/run/secrets")


def test_missing_secret_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        sources(tmp_path).get(NAME)
    assert NAME in str(caught.value)
    assert str(tmp_path / "secrets") in str(caught.value)
    assert caught.value.exit_code == ExitCode.ACCOUNT


@pytest.mark.parametrize(
    ("where", "written"),
    [("campaign", "AMP_UNIT_SECRT"), ("cwd", "amp_unit_secret"), ("secrets", "AMP_UNIT_SECRETS")],
)
def test_a_secret_set_under_a_near_name_is_pointed_at_never_its_value(
    tmp_path: Path, where: str, written: str
) -> None:
    """A .env with a typo in the variable's name said only "not set", and the operator looked for a missing file."""
    src = sources(tmp_path)
    if where == "secrets":
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / written).write_text("hunter2-very-secret\n")
        place = f"{tmp_path / 'secrets'}/"
    else:
        (tmp_path / where / ".env").write_text(f"OTHER=1\n{written}=hunter2-very-secret\n")
        place = str(tmp_path / where / ".env")
    with pytest.raises(CredentialsError) as caught:
        src.get(NAME)
    assert str(caught.value).endswith(f"; did you mean {written} (in {place})?")
    assert "hunter2" not in str(caught.value)


def test_no_near_name_no_guess(tmp_path: Path) -> None:
    src = sources(tmp_path)
    (tmp_path / "campaign" / ".env").write_text("AMPLIFIER_OTHER_PASSWORD=x\n")
    with pytest.raises(CredentialsError) as caught:
        src.get(NAME)
    assert "did you mean" not in str(caught.value)


def test_empty_secret_counts_as_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "")
    with pytest.raises(CredentialsError, match=NAME):
        sources(tmp_path).get(NAME)


def test_value_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "hunter2-very-secret")
    value = sources(tmp_path).get(NAME)
    assert "hunter2" not in repr(value)
    assert "hunter2" not in str(value)


@pytest.mark.parametrize("bad", ["lower_case", "1STARTS_WITH_DIGIT", "HAS-DASH", ""])
def test_invalid_variable_name(tmp_path: Path, bad: str) -> None:
    with pytest.raises(CredentialsError, match="not a valid"):
        sources(tmp_path).get(bad)
