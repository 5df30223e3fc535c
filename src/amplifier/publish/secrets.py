"""Credentials, read through pydantic-settings.

An account names the variable that holds its secret (``token_env`` for Mastodon, ``password_env`` for
Bluesky); the campaign files never hold the secret itself. The value is looked up, first match wins, in:

1. the process environment (``export RISEUP_BSKY_PASSWORD=...``);
2. a ``.env`` file in the campaign folder, then one in the current directory;
3. a file named after the variable in the secrets folder: ``$AMPLIFIER_SECRETS_DIR``, default ``/run/secrets``
   (Docker and systemd credentials put secrets there).

Values are :class:`pydantic.SecretStr`: they print as ``**********``, and each value read is registered with
:func:`amplifier.redact.register`, so a server that echoes it back never gets it into a message. A missing secret is a
:class:`~amplifier.errors.CredentialsError` naming the variable and where it was looked for, never a value.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError, create_model

from amplifier import redact
from amplifier.campaign.models import ENV_NAME_PATTERN
from amplifier.errors import CredentialsError

SECRETS_DIR_ENV = "AMPLIFIER_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")


@functools.cache
def _settings_base() -> type[Any]:
    """pydantic-settings' base for looking up one secret, made on first use: a command that reads no secret (the
    health check, ``history``) does not pay for importing pydantic-settings."""
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class _SecretSettings(BaseSettings):
        model_config = SettingsConfigDict(
            case_sensitive=True, extra="ignore", env_file_encoding="utf-8", env_ignore_empty=True
        )

    return _SecretSettings


@dataclass(frozen=True)
class SecretSources:
    """Where secrets are looked up (besides the process environment, which always comes first)."""

    env_files: tuple[Path, ...] = ()  # highest priority first
    secrets_dir: Path | None = None
    _cache: dict[str, SecretStr] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_campaign(
        cls, campaign_dir: Path | None, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> SecretSources:
        """The usual sources: ``<campaign>/.env``, ``./.env``, then the secrets folder."""
        env = os.environ if environ is None else environ
        files: list[Path] = []
        if campaign_dir is not None:
            files.append(campaign_dir.resolve() / ".env")
        here = (cwd or Path.cwd()).resolve() / ".env"
        if here not in files:
            files.append(here)
        configured = env.get(SECRETS_DIR_ENV, "").strip()
        return cls(
            env_files=tuple(files), secrets_dir=Path(configured) if configured else DEFAULT_SECRETS_DIR
        )

    def where(self) -> str:
        places = ["the environment", *(str(p) for p in self.env_files)]
        if self.secrets_dir is not None:
            places.append(f"{self.secrets_dir}/")
        return ", ".join(places)

    def get(self, name: str, *, fresh: bool = False) -> SecretStr:
        """The secret held by the variable ``name``; :class:`CredentialsError` when no source has it.

        Read once and cached; ``fresh``: read the sources again (before a login, so that a corrected
        password is used at once, and to tell whether a paused account's secret changed)."""
        if not re.match(ENV_NAME_PATTERN, name):
            raise CredentialsError(f"{name!r} is not a valid environment variable name")
        cached = None if fresh else self._cache.get(name)
        if cached is not None:
            return cached
        value = self._load(name)
        if value is None or not value.get_secret_value().strip():
            raise CredentialsError(
                f"the secret {name} is not set: export {name}=..., or put it in a .env file or a file named "
                f"{name} in the secrets folder (looked in {self.where()})" + self._near(name)
            )
        redact.register(value.get_secret_value())  # never shown, even when a server echoes it back
        self._cache[name] = value
        return value

    def _near(self, name: str) -> str:
        """``; did you mean ...`` for a variable set under a name close to ``name`` (a typo in a ``.env`` file,
        another case): the names and where they are, never a value."""
        from difflib import get_close_matches

        from dotenv import dotenv_values

        places: dict[str, str] = dict.fromkeys(os.environ, "the environment")
        for path in reversed(self.env_files):
            if path.is_file():
                try:
                    places.update(dict.fromkeys(dotenv_values(path), str(path)))
                except (OSError, UnicodeDecodeError):
                    continue
        if self.secrets_dir is not None and self.secrets_dir.is_dir():
            with contextlib.suppress(OSError):
                places.update(
                    dict.fromkeys((p.name for p in self.secrets_dir.iterdir()), f"{self.secrets_dir}/")
                )
        places.pop(name, None)  # set but empty: said as not set
        upper = {key.upper(): key for key in places}
        near = [upper[key] for key in get_close_matches(name.upper(), list(upper), n=3, cutoff=0.85)]
        if not near:
            return ""
        return "; did you mean " + " or ".join(f"{key} (in {places[key]})" for key in near) + "?"

    def _load(self, name: str) -> SecretStr | None:
        # Later env files override earlier ones in pydantic-settings: pass the lowest priority first.
        env_files = tuple(str(p) for p in reversed(self.env_files) if p.is_file())
        secrets_dir = self.secrets_dir if self.secrets_dir is not None and self.secrets_dir.is_dir() else None
        fields: dict[str, Any] = {name: (SecretStr | None, None)}
        from pydantic_settings import SettingsError

        model: type[Any] = create_model("AccountSecret", __base__=_settings_base(), **fields)
        try:
            settings = model(_env_file=env_files or None, _secrets_dir=secrets_dir)
        except (ValidationError, SettingsError, OSError) as exc:
            # Never echo the input: a validation error would carry the value. A file that cannot be read
            # (e.g. a Docker secret owned by another user, mode 0600) comes wrapped in a SettingsError.
            cause = exc.__cause__ if isinstance(exc, SettingsError) and exc.__cause__ else exc
            raise CredentialsError(
                f"the secret {name} could not be read ({type(cause).__name__}): it must be readable by the "
                f"user amplifier runs as (uid {os.getuid()})"
            ) from None
        value = getattr(settings, name)
        return value if isinstance(value, SecretStr) else None
