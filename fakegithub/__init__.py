"""A GitHub REST API emulator for tests: ``FakeGitHub`` answers as api.github.com does.

Start it, seed users, tokens, repositories, issues and comments, point a client at ``gh.url``;
it serves the endpoints a goals bot uses (repository, issue, issue comments with pagination and
``since``, comment create/edit/delete, ``/rate_limit``, ``/user``, ``/users/{u}``, GitHub App
installation tokens) with GitHub's headers, ETags and 304s, rate limits, error bodies, and
injectable faults. It imports nothing from the bot, so the bot's client can be tested against it.
"""

from .appauth import AppKeyPair
from .faults import Faults
from .server import FakeGitHub, RequestRecord

__all__ = ["AppKeyPair", "FakeGitHub", "Faults", "RequestRecord"]
