"""The GitHub client against the GitHub emulator, over real HTTP on 127.0.0.1.

Time is a clock the tests move by hand and ``sleep`` only records its delays, so retries,
rate limit resets and installation token renewal are checked without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from fakegithub import AppKeyPair, FakeGitHub, RequestRecord
from zulip_goals_bot.errors import GitHubAmbiguous, GitHubError
from zulip_goals_bot.github.client import (
    Answer,
    AppAuth,
    GitHubClient,
    RateLimit,
    TokenAuth,
)

REPO = "rust-lang/rust-project-goals"
ISSUE = 263
ISSUE_PATH = f"/repos/{REPO}/issues/{ISSUE}"
COMMENTS = f"{ISSUE_PATH}/comments"
T0 = datetime(2025, 3, 6, 14, 0, 0, tzinfo=UTC)
TOKEN = "ghp_ClientTestToken0123456789abcdefghijk"
SMALL = "ghp_SmallRateLimitToken0123456789abcdef"
READ_ONLY = "ghp_ReadOnlyToken0123456789abcdefghijkl"
APP_ID, INSTALLATION = 123, 456


class Clock:
    """A clock the tests move by hand, shared by the emulator and the client."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Sleeps:
    """Stands in for ``time.sleep``: records each delay instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class RefuseConnections(httpx.BaseTransport):
    """Refuses the first ``times`` connections, as a host that is not up yet would, then passes
    requests on to the emulator: nothing of a refused request was sent."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.times > 0:
            self.times -= 1
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gh(clock: Clock) -> Iterator[FakeGitHub]:
    with FakeGitHub(clock=clock) as fake:
        fake.add_token(TOKEN, login="goals-bot")
        fake.add_token(SMALL, login="goals-bot", rate_limit=2)
        fake.add_token(READ_ONLY, login="reader", can_write=False)
        fake.add_repo(REPO)
        fake.add_issue(REPO, ISSUE, title="Goal", body="Tracking", author="nikomatsakis")
        yield fake


def make_client(
    gh: FakeGitHub,
    clock: Clock,
    sleeps: Sleeps,
    auth: TokenAuth | AppAuth | None,
    transport: httpx.BaseTransport | None = None,
) -> GitHubClient:
    # An explicit transport also keeps any proxy from the environment out of the way.
    return GitHubClient(
        gh.url, auth, clock=clock, sleep=sleeps, transport=transport or httpx.HTTPTransport()
    )


@pytest.fixture
def client(gh: FakeGitHub, clock: Clock, sleeps: Sleeps) -> Iterator[GitHubClient]:
    with make_client(gh, clock, sleeps, TokenAuth(TOKEN)) as made:
        yield made


def raised(call: Callable[..., object], *args: object, **kw: object) -> GitHubError:
    """The GitHubError a call raises (and fail when it raises none)."""
    with pytest.raises(GitHubError) as info:
        call(*args, **kw)
    return info.value


def headers_of(record: RequestRecord) -> dict[str, str]:
    return {name.lower(): value for name, value in record.request_headers.items()}


def count(gh: FakeGitHub, method: str, part: str) -> int:
    return sum(1 for r in gh.requests if r.method == method and part in r.path)


# --- reading ---------------------------------------------------------------------------------


def test_get_issue_sends_githubs_headers(gh: FakeGitHub, client: GitHubClient) -> None:
    answer = client.get(ISSUE_PATH)
    assert answer.status == 200 and answer.data["number"] == ISSUE
    assert answer.etag is not None and answer.etag.startswith('W/"')
    assert answer.url == gh.url + ISSUE_PATH and answer.next_url is None
    (seen,) = gh.requests
    sent = headers_of(seen)
    assert sent["authorization"] == f"Bearer {TOKEN}"
    assert sent["x-github-api-version"] == "2022-11-28"
    assert sent["accept"] == "application/vnd.github+json"
    assert sent["user-agent"] == "zulip-goals-bot"
    assert "if-none-match" not in sent
    assert client.rate_limit == RateLimit(5000, 4999, T0 + timedelta(hours=1))
    assert client.requests_sent == 1 and client.not_modified == 0


def test_anonymous_client_sends_no_authorization(
    gh: FakeGitHub, clock: Clock, sleeps: Sleeps
) -> None:
    with make_client(gh, clock, sleeps, None) as anonymous:
        assert anonymous.get(ISSUE_PATH).status == 200
    assert "authorization" not in headers_of(gh.requests[-1])
    assert anonymous.rate_limit is not None and anonymous.rate_limit.limit == 60


def test_pagination_follows_next_url_over_every_comment(
    gh: FakeGitHub, client: GitHubClient
) -> None:
    seeded = [gh.add_comment(REPO, ISSUE, "nikomatsakis", f"update {i}") for i in range(250)]
    answer = client.get(COMMENTS, {"per_page": 100})
    pages = [answer]
    while answer.next_url is not None:
        assert answer.next_url.startswith(gh.url + "/")  # absolute, as GitHub writes it
        answer = client.get(answer.next_url)
        pages.append(answer)
    assert [len(page.data) for page in pages] == [100, 100, 50]
    ids = [comment["id"] for page in pages for comment in page.data]
    assert ids == seeded  # each once, in order
    assert client.requests_sent == 3
    assert [r.query.get("per_page") for r in gh.requests] == ["100"] * 3


def test_etag_gives_an_uncounted_304(gh: FakeGitHub, client: GitHubClient) -> None:
    first = client.get(ISSUE_PATH)
    remaining = gh.rate_limit_remaining(TOKEN)
    again = client.get(ISSUE_PATH, etag=first.etag)
    assert again == Answer(304, None, first.etag, None, gh.url + ISSUE_PATH)
    assert headers_of(gh.requests[-1])["if-none-match"] == first.etag
    assert client.not_modified == 1 and client.requests_sent == 2
    assert gh.rate_limit_remaining(TOKEN) == remaining
    assert client.rate_limit is not None and client.rate_limit.remaining == remaining
    gh.edit_issue_body(REPO, ISSUE, "Tracking, edited")
    changed = client.get(ISSUE_PATH, etag=first.etag)
    assert changed.status == 200 and changed.etag != first.etag
    assert changed.data["body"] == "Tracking, edited" and client.not_modified == 1


def test_a_missing_link_header_or_rate_limit_header_is_none() -> None:
    assert RateLimit.from_headers({}) is None
    assert RateLimit.from_headers(
        {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "7", "x-ratelimit-reset": "0"}
    ) == RateLimit(60, 7, datetime(1970, 1, 1, tzinfo=UTC))


# --- rate limits -----------------------------------------------------------------------------


def test_spent_primary_limit_raises_without_sending_until_reset(
    gh: FakeGitHub, clock: Clock, sleeps: Sleeps
) -> None:
    reset = T0 + timedelta(hours=1)
    with make_client(gh, clock, sleeps, TokenAuth(SMALL)) as first:
        first.get(ISSUE_PATH)
        first.get(ISSUE_PATH)  # the last request the limit allows
        assert first.rate_limit == RateLimit(2, 0, reset)
        sent = len(gh.requests)
        error = raised(first.get, ISSUE_PATH)
        assert error.retry_at == reset and len(gh.requests) == sent
    # A client that does not know yet meets GitHub's 403.
    with make_client(gh, clock, sleeps, TokenAuth(SMALL)) as other:
        error = raised(other.get, ISSUE_PATH)
        assert error.status == 403 and error.retry_at == reset
        assert gh.requests[-1].status == 403
        assert "rate limit" in str(error) and "15:00:00 UTC" in str(error)
        sent = len(gh.requests)
        for _ in range(3):
            again = raised(other.post, COMMENTS, {"body": "hi"})
            assert again.retry_at == reset and again.status == 403
        assert len(gh.requests) == sent and other.requests_sent == 1
        clock.advance(hours=1, seconds=1)
        assert other.get(ISSUE_PATH).status == 200
        assert len(gh.requests) == sent + 1
    assert sleeps.delays == []


def test_secondary_limits_say_when_to_come_back_and_never_sleep(
    gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps
) -> None:
    gh.faults.fail_next(403, retry_after=120, secondary=True)
    error = raised(client.get, ISSUE_PATH)
    assert error.status == 403 and error.retry_at == T0 + timedelta(seconds=120)
    assert "secondary rate limit" in str(error)
    assert gh.faults.fired == {"fail": 1}
    gh.faults.fail_next(429)
    error = raised(client.post, COMMENTS, {"body": "hi"})
    assert not isinstance(error, GitHubAmbiguous)  # refused: nothing was done
    assert error.status == 429 and error.retry_at == T0 + timedelta(seconds=60)
    assert gh.faults.fired == {"fail": 2}
    assert sleeps.delays == [] and client.requests_sent == 2
    assert gh.comments(REPO, ISSUE) == []
    # A secondary limit does not block the next call: the caller decides when to call.
    assert client.get(ISSUE_PATH).status == 200


# --- retries ---------------------------------------------------------------------------------


def test_get_is_retried_after_5xx(gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps) -> None:
    gh.faults.fail_next(503, times=2)
    assert client.get(ISSUE_PATH).data["number"] == ISSUE
    assert sleeps.delays == [1, 2] and client.requests_sent == 3
    assert [r.status for r in gh.requests] == [503, 503, 200]


def test_get_gives_up_after_four_5xx(gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps) -> None:
    gh.faults.fail_next(502, times=4)  # an HTML page, as GitHub's front end sends
    error = raised(client.get, ISSUE_PATH)
    assert error.status == 502 and error.retry_at is None
    assert "502" in str(error) and "4 times" in str(error) and "\n" not in str(error)
    assert sleeps.delays == [1, 2, 4] and client.requests_sent == 4
    assert gh.faults.pending == 0


def test_dropped_connection_is_retried(
    gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps
) -> None:
    gh.faults.cut_next(method="GET")
    assert client.get(ISSUE_PATH).status == 200
    assert sleeps.delays == [1] and gh.faults.fired == {"cut": 1}


def test_unreachable_github_is_status_0(
    gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps
) -> None:
    gh.faults.cut_next(times=4)
    error = raised(client.get, ISSUE_PATH)
    assert error.status == 0 and "could not be reached" in str(error)
    assert sleeps.delays == [1, 2, 4]


def test_edit_and_delete_are_retried(gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps) -> None:
    cid = gh.add_comment(REPO, ISSUE, "goals-bot", "first")
    path = f"/repos/{REPO}/issues/comments/{cid}"
    gh.faults.fail_next(500, method="PATCH")
    gh.faults.cut_after_commit_next(method="PATCH")  # done, unanswered: doing it again is fine
    assert client.patch(path, {"body": "edited"}).data["body"] == "edited"
    assert gh.comments(REPO, ISSUE)[0]["body"] == "edited"
    gh.faults.fail_next(503, method="DELETE")
    assert client.delete(path) == Answer(204, None, None, None, gh.url + path)
    assert gh.comments(REPO, ISSUE) == [] and sleeps.delays == [1, 2, 1]
    error = raised(client.delete, path)  # the caller decides whether gone means done
    assert error.status == 404 and path in str(error)


# --- POST is not repeated blindly ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "created"),
    [("cut_after_commit", 1), ("cut", 0), ("503", 0), ("500", 0)],
)
def test_post_failing_after_sending_is_ambiguous(
    gh: FakeGitHub, client: GitHubClient, sleeps: Sleeps, fault: str, created: int
) -> None:
    if fault == "cut_after_commit":
        gh.faults.cut_after_commit_next(method="POST")
    elif fault == "cut":
        gh.faults.cut_next(method="POST")
    else:
        gh.faults.fail_next(int(fault), method="POST")
    with pytest.raises(GitHubAmbiguous) as info:
        client.post(COMMENTS, {"body": "Progress: on track"})
    assert len(gh.comments(REPO, ISSUE)) == created
    assert count(gh, "POST", COMMENTS) == 1 and sleeps.delays == []
    assert info.value.status == (int(fault) if fault.isdigit() else 0)
    assert "look before" in str(info.value)


def test_post_is_retried_when_the_connection_was_refused(
    gh: FakeGitHub, clock: Clock, sleeps: Sleeps
) -> None:
    with make_client(gh, clock, sleeps, TokenAuth(TOKEN), RefuseConnections(2)) as flaky:
        made = flaky.post(COMMENTS, {"body": "Progress: on track"})
    assert made.status == 201 and made.data["user"]["login"] == "goals-bot"
    assert [c["id"] for c in gh.comments(REPO, ISSUE)] == [made.data["id"]]
    assert sleeps.delays == [1, 2] and flaky.requests_sent == 3


# --- refusals --------------------------------------------------------------------------------


def test_bad_token_is_a_clear_401(gh: FakeGitHub, clock: Clock, sleeps: Sleeps) -> None:
    wrong = "ghp_NotAValidToken0123456789abcdefghijkl"
    with make_client(gh, clock, sleeps, TokenAuth(wrong + "\n")) as bad:
        error = raised(bad.get, ISSUE_PATH)
    assert error.status == 401 and headers_of(gh.requests[-1])["authorization"] == f"Bearer {wrong}"
    assert str(error).startswith("GitHub refused the token (401 Bad credentials)")
    assert "GITHUB_TOKEN" in str(error) and wrong not in str(error)
    assert sleeps.delays == []


def test_missing_repository_is_a_404_naming_the_path(client: GitHubClient) -> None:
    error = raised(client.get, "/repos/rust-lang/no-such-repo/issues/1")
    assert error.status == 404
    assert "/repos/rust-lang/no-such-repo/issues/1" in str(error)
    assert "not found, or the token cannot see it" in str(error)


def test_empty_comment_is_a_422_with_githubs_reasons(gh: FakeGitHub, client: GitHubClient) -> None:
    error = raised(client.post, COMMENTS, {"body": "  "})
    assert not isinstance(error, GitHubAmbiguous) and error.status == 422
    assert "Validation Failed" in str(error) and "Body cannot be blank" in str(error)
    assert "\n" not in str(error) and gh.comments(REPO, ISSUE) == []
    error = raised(client.post, COMMENTS, {"body": 5})
    assert "is not a string" in str(error) and "\n" not in str(error)


def test_read_only_token_is_a_403_with_githubs_message(
    gh: FakeGitHub, clock: Clock, sleeps: Sleeps
) -> None:
    with make_client(gh, clock, sleeps, TokenAuth(READ_ONLY)) as reader:
        error = raised(reader.post, COMMENTS, {"body": "hi"})
    assert error.status == 403 and error.retry_at is None
    assert "Resource not accessible by personal access token" in str(error)
    assert "issues=write" in str(error)


def test_credentials_go_only_to_the_api_host(client: GitHubClient) -> None:
    error = raised(client.get, "https://example.com/repos/x/y/issues/1")
    assert "example.com" in str(error) and client.requests_sent == 0


def test_no_message_or_log_line_holds_the_token(
    gh: FakeGitHub, clock: Clock, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[GitHubError] = []
    arms: list[Callable[[], None]] = [
        lambda: gh.faults.fail_next(503, times=4),
        lambda: gh.faults.cut_next(times=4),
        lambda: gh.faults.fail_next(403, retry_after=30, secondary=True),
        lambda: gh.faults.fail_next(403),  # a primary limit
    ]
    with make_client(gh, clock, sleeps, TokenAuth(TOKEN)) as client:
        for arm in arms:
            arm()
            errors.append(raised(client.get, ISSUE_PATH))
        clock.advance(hours=2)
        errors.append(raised(client.get, "/repos/rust-lang/secret"))
        errors.append(raised(client.post, COMMENTS, {"body": ""}))
        gh.faults.cut_after_commit_next()
        errors.append(raised(client.post, COMMENTS, {"body": "once"}))
        errors.append(raised(client.get, f"https://evil.example/?t={TOKEN}"))
    with make_client(gh, clock, sleeps, TokenAuth(TOKEN + "x")) as bad:
        errors.append(raised(bad.get, ISSUE_PATH))
    assert len(errors) == 9 and caplog.records  # the retries were logged
    for error in errors:
        assert TOKEN not in str(error), error
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(TokenAuth(TOKEN))


# --- GitHub App ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_key() -> AppKeyPair:
    return AppKeyPair.generate(2048)  # GitHub's size: PyJWT warns about smaller keys


@pytest.fixture
def app(gh: FakeGitHub, app_key: AppKeyPair) -> AppKeyPair:
    gh.add_app(APP_ID, app_key.public_pem, INSTALLATION, [REPO])
    return app_key


def test_app_reads_and_posts_as_its_bot(
    gh: FakeGitHub, app: AppKeyPair, clock: Clock, sleeps: Sleeps
) -> None:
    auth = AppAuth(str(APP_ID), app.private_pem, repository=REPO)
    with make_client(gh, clock, sleeps, auth) as client:
        assert client.get(ISSUE_PATH).data["number"] == ISSUE
        made = client.post(COMMENTS, {"body": "Progress: on track"})
    assert made.status == 201 and made.data["user"]["login"] == "goals-bot[bot]"
    assert made.data["performed_via_github_app"]["id"] == APP_ID
    assert auth.installation_id == INSTALLATION
    lookup, exchange, read, post = gh.requests
    assert (lookup.method, lookup.path) == ("GET", f"/repos/{REPO}/installation")
    assert exchange.path == f"/app/installations/{INSTALLATION}/access_tokens"
    assert headers_of(lookup)["authorization"] == headers_of(exchange)["authorization"]
    app_jwt = headers_of(exchange)["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(
        app_jwt, app.public_pem, algorithms=["RS256"], options={"verify_exp": False}
    )
    assert claims == {
        "iat": int(T0.timestamp()) - 60,
        "exp": int(T0.timestamp()) + 9 * 60,
        "iss": str(APP_ID),
    }
    assert headers_of(read)["authorization"].startswith("Bearer ghs_")
    assert headers_of(post)["authorization"] == headers_of(read)["authorization"]
    # The JWT requests count on the app's limit; the client reports the installation's.
    assert client.rate_limit is not None and client.rate_limit.limit == 5000
    assert client.requests_sent == 4


def test_installation_token_is_reused_then_renewed(
    gh: FakeGitHub, app: AppKeyPair, clock: Clock, sleeps: Sleeps
) -> None:
    auth = AppAuth(str(APP_ID), app.private_pem, installation_id=INSTALLATION)
    with make_client(gh, clock, sleeps, auth) as client:
        client.get(ISSUE_PATH)
        clock.advance(minutes=30)
        client.get(COMMENTS)
        assert count(gh, "POST", "/access_tokens") == 1
        clock.advance(minutes=26)  # 56 minutes on: less than 5 minutes of the hour left
        client.get(ISSUE_PATH)
    assert count(gh, "POST", "/access_tokens") == 2
    assert count(gh, "GET", "/installation") == 0  # the id was given
    reads = [headers_of(r)["authorization"] for r in gh.requests if r.path == ISSUE_PATH]
    assert reads[0] != reads[1] and all(r.status in (200, 201) for r in gh.requests)


def test_refused_installation_token_is_renewed_at_once(
    gh: FakeGitHub, app: AppKeyPair, clock: Clock, sleeps: Sleeps
) -> None:
    """Our clock 7 minutes behind GitHub's: the cached token expires while we think it has
    minutes left; the 401 drops it and the request goes again with a new one."""
    auth = AppAuth(str(APP_ID), app.private_pem, installation_id=INSTALLATION)
    behind = GitHubClient(
        gh.url,
        auth,
        clock=lambda: clock() - timedelta(minutes=7),
        sleep=sleeps,
        transport=httpx.HTTPTransport(),
    )
    with behind:
        behind.get(ISSUE_PATH)
        clock.advance(minutes=61)
        made = behind.post(COMMENTS, {"body": "Progress: on track"})
    assert made.status == 201 and len(gh.comments(REPO, ISSUE)) == 1
    assert [(r.method, r.status) for r in gh.requests][2:] == [
        ("POST", 401),
        ("POST", 201),  # the new installation token
        ("POST", 201),  # the comment
    ]
    assert count(gh, "POST", "/access_tokens") == 2 and sleeps.delays == []


def test_app_not_installed_on_the_repository(
    gh: FakeGitHub, app: AppKeyPair, clock: Clock, sleeps: Sleeps
) -> None:
    gh.add_repo("rust-lang/elsewhere")
    auth = AppAuth(str(APP_ID), app.private_pem, repository="rust-lang/elsewhere")
    with make_client(gh, clock, sleeps, auth) as client:
        error = raised(client.get, "/repos/rust-lang/elsewhere")
    assert error.status == 404
    assert f"GitHub App {APP_ID} is not installed on rust-lang/elsewhere" in str(error)


def test_app_with_the_wrong_key_is_told_so(
    gh: FakeGitHub, app: AppKeyPair, clock: Clock, sleeps: Sleeps
) -> None:
    other = AppKeyPair.generate(2048)
    auth = AppAuth(str(APP_ID), other.private_pem, installation_id=INSTALLATION)
    with make_client(gh, clock, sleeps, auth) as client:
        error = raised(client.get, ISSUE_PATH)
    assert error.status == 401 and "JSON web token" in str(error)
    assert "private key" in str(error) and "Bearer" not in str(error)
    assert len(gh.requests) == 1 and sleeps.delays == []


def test_unusable_credentials_are_refused_at_once(app_key: AppKeyPair) -> None:
    with pytest.raises(GitHubError, match="not an unencrypted PEM RSA key"):
        AppAuth(
            "1",
            b"-----BEGIN RSA PRIVATE KEY-----\nbm9wZQ==\n-----END RSA PRIVATE KEY-----\n",
            installation_id=1,
        )
    with pytest.raises(GitHubError, match="installation id or a repository"):
        AppAuth("1", app_key.private_pem)
    with pytest.raises(GitHubError, match="token is empty"):
        TokenAuth(" \n")
