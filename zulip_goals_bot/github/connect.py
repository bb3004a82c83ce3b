"""From ``[github]`` to a client: the token (environment or file) or the GitHub App key."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ..config import GitHubConfig, secret_file_exposed
from ..errors import ConfigError
from .client import AppAuth, GitHubClient, TokenAuth

TOKEN_ENV = "GITHUB_TOKEN"


def _secret(path: Path, what: str) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc
    if os.name == "posix" and secret_file_exposed(mode):
        raise ConfigError(f"the {what} {path} can be read by other users; run `chmod 600 {path}`")
    return data


def github_auth(cfg: GitHubConfig) -> TokenAuth | AppAuth:
    """The credentials ``[github]`` names; an App wins over a token when both are set."""
    if cfg.app_id:
        assert cfg.app_private_key_file is not None  # load_config requires it with app_id
        pem = _secret(cfg.app_private_key_file, "GitHub App private key file")
        return AppAuth(
            cfg.app_id,
            pem,
            installation_id=cfg.app_installation_id,
            repository=cfg.repository,
        )
    if cfg.token_file is not None:
        token = _secret(cfg.token_file, "GitHub token file").decode("utf-8", "replace").strip()
        if not token:
            raise ConfigError(f"the GitHub token file {cfg.token_file} is empty")
        return TokenAuth(token)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            "[github] repository is set but no credentials are: set GITHUB_TOKEN, "
            "token_file, or app_id and app_private_key_file in bot.conf"
        )
    return TokenAuth(token)


def github_client(cfg: GitHubConfig, clock: Callable[[], datetime]) -> GitHubClient:
    return GitHubClient(cfg.api_url, github_auth(cfg), clock=clock)
