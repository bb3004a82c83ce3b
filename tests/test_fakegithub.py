"""The GitHub emulator answers as api.github.com does.

Checked over real HTTP with ``requests``: bodies against GitHub's own OpenAPI schemas
(tests/data/github/rest-api-subset.json), headers, Link pagination and error bodies against
answers recorded from api.github.com (the octokit fixtures), and the behaviour a client relies
on: ``since``, ETags and uncounted 304s, rate limits, permissions, App tokens and faults.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from fakegithub import AppKeyPair, FakeGitHub, appauth
from fakegithub.server import iter_routes

DATA = Path(__file__).parent / "data" / "github"
REPO = "rust-lang/rust-project-goals"
ISSUE = 263
T0 = datetime(2025, 3, 6, 14, 0, 0, tzinfo=UTC)
RW, RO, LIMITED = "ghp_readwrite", "ghp_readonly", "ghp_limited"


class Clock:
    """A clock the tests move by hand: no sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _null_in_nullable_enums(node: Any) -> None:
    """Let ``nullable`` enums accept ``null``, as GitHub's answers need.

    Under OpenAPI 3.0.3, ``nullable: true`` does not add ``null`` to an ``enum``, and GitHub's
    description leaves it out (``state_reason``), yet api.github.com sends ``"state_reason":
    null`` for every open issue (see the paginate-issues recording). The description, not the
    answer, is wrong there; this is the one change made to it, in memory.
    """
    if isinstance(node, dict):
        if node.get("nullable") and "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        for value in node.values():
            _null_in_nullable_enums(value)
    elif isinstance(node, list):
        for value in node:
            _null_in_nullable_enums(value)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / "rest-api-subset.json").read_text())
    _null_in_nullable_enums(loaded)
    return loaded


def test_recorded_issues_need_null_in_nullable_enums() -> None:
    """Why ``spec`` patches the description: real issues carry ``state_reason: null``."""
    recorded = fixture("paginate-issues")[0]["response"]
    assert all(issue["state_reason"] is None for issue in recorded)


def fixture(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (DATA / "octokit-fixtures" / name / "normalized-fixture.json").read_text()
    )
    return data


def validate(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Validate ``body`` against the response schema of that operation in GitHub's description."""
    response = spec["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = dict(response["content"]["application/json"]["schema"])
    schema["components"] = spec["components"]
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(body)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def gh(clock: Clock) -> Iterator[FakeGitHub]:
    with FakeGitHub(clock=clock) as fake:
        fake.add_token(RW, login="goals-bot", scopes=("repo", "read:org"))
        fake.add_token(RO, login="reader", can_write=False)
        fake.add_token(LIMITED, login="outsider", repos=[REPO])
        fake.add_repo(REPO)
        fake.add_repo("rust-lang/secret", private=True)
        fake.add_issue(REPO, ISSUE, title="Goal", body="Tracking", author="nikomatsakis")
        yield fake


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # never through a proxy: everything stays on 127.0.0.1
    yield session
    session.close()


def call(
    http: requests.Session,
    gh: FakeGitHub,
    method: str,
    path: str,
    token: str | None = RW,
    **kw: Any,
) -> requests.Response:
    headers = dict(kw.pop("headers", {}))
    headers.setdefault("Accept", "application/vnd.github+json")
    if token is not None:
        headers.setdefault("Authorization", f"token {token}")
    return http.request(method, gh.url + path, headers=headers, timeout=10, **kw)


COMMENTS = f"/repos/{REPO}/issues/{ISSUE}/comments"


# --- shapes against GitHub's description and recordings ----------------------------------


def test_repository_validates_and_carries_the_recorded_header_set(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    r = call(http, gh, "GET", f"/repos/{REPO}")
    assert r.status_code == 200
    validate(spec, "/repos/{owner}/{repo}", "get", 200, r.json())
    recorded = fixture("get-repository")[0]
    missing = set(recorded["response"]) - set(r.json())
    assert missing <= {"temp_clone_token"}, missing  # only shown to admins
    ours = {k.lower(): v for k, v in r.headers.items()}
    # The recording came through a proxy closing each connection; Last-Modified is not emulated.
    assert set(recorded["headers"]) - {"connection", "last-modified"} <= set(ours)
    for name in (
        "content-type",
        "x-github-media-type",
        "access-control-expose-headers",
        "x-ratelimit-resource",
        "cache-control",
        "x-accepted-oauth-scopes",
    ):
        assert ours[name] == recorded["headers"][name], name
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', ours["etag"])
    shape = r"[0-9A-F]{4}:[0-9A-F]{5}:[0-9A-F]{7}:[0-9A-F]{7}:[0-9A-F]{8}"
    assert re.fullmatch(shape, recorded["headers"]["x-github-request-id"])
    assert re.fullmatch(shape, ours["x-github-request-id"])
    assert ours["x-oauth-scopes"] == "repo, read:org"
    assert ours["date"] == "Thu, 06 Mar 2025 14:00:00 GMT"  # from the injected clock
    # Owner and name are case-insensitive, the canonical case is answered.
    r = call(http, gh, "GET", "/repos/Rust-Lang/RUST-project-goals")
    assert r.status_code == 200 and r.json()["full_name"] == REPO


def test_rate_limit_headers_have_the_recorded_names_and_count(
    gh: FakeGitHub, http: requests.Session
) -> None:
    recorded = fixture("paginate-issues")[0]["headers"]
    r = call(http, gh, "GET", f"/repos/{REPO}/issues/{ISSUE}")
    names = [k for k in recorded if k.startswith("x-ratelimit-")]
    assert sorted(names) == sorted(
        k.lower() for k in r.headers if k.lower().startswith("x-ratelimit-")
    )
    assert r.headers["X-RateLimit-Limit"] == recorded["x-ratelimit-limit"] == "5000"
    assert r.headers["X-RateLimit-Remaining"] == recorded["x-ratelimit-remaining"] == "4999"
    assert r.headers["X-RateLimit-Used"] == str(recorded["x-ratelimit-used"]) == "1"
    # The fixture's reset was normalized to milliseconds; GitHub sends epoch seconds.
    assert int(r.headers["X-RateLimit-Reset"]) == int(T0.timestamp()) + 3600


def test_issue_and_comment_validate(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    cid = gh.add_comment(REPO, ISSUE, author="nikomatsakis", body="Update")
    issue = call(http, gh, "GET", f"/repos/{REPO}/issues/{ISSUE}").json()
    validate(spec, "/repos/{owner}/{repo}/issues/{issue_number}", "get", 200, issue)
    assert issue["comments"] == 1 and issue["user"]["login"] == "nikomatsakis"
    recorded_issue = fixture("paginate-issues")[0]["response"][0]
    assert list(recorded_issue) == [k for k in issue if k in recorded_issue]  # same key order
    listed = call(http, gh, "GET", COMMENTS).json()
    validate(spec, "/repos/{owner}/{repo}/issues/{issue_number}/comments", "get", 200, listed)
    one = call(http, gh, "GET", f"/repos/{REPO}/issues/comments/{cid}").json()
    validate(spec, "/repos/{owner}/{repo}/issues/comments/{comment_id}", "get", 200, one)
    assert one == listed[0] == gh.comments(REPO, ISSUE)[0]
    assert one["html_url"] == f"https://github.com/{REPO}/issues/{ISSUE}#issuecomment-{cid}"
    assert one["created_at"] == one["updated_at"] == "2025-03-06T14:00:00Z"
    assert one["user"]["type"] == "User" and one["author_association"] == "NONE"
    assert one["issue_url"] == f"{gh.url}/repos/{REPO}/issues/{ISSUE}"


def test_users_validate(gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]) -> None:
    me = call(http, gh, "GET", "/user")
    validate(spec, "/user", "get", 200, me.json())
    assert me.json()["login"] == "goals-bot" and me.headers["X-OAuth-Scopes"] == "repo, read:org"
    gh.add_user("some-app[bot]")
    for login, kind in (
        ("nikomatsakis", "User"),
        ("some-app[bot]", "Bot"),
        ("rust-lang", "Organization"),
    ):
        r = call(http, gh, "GET", f"/users/{login}")
        validate(spec, "/users/{username}", "get", 200, r.json())
        assert r.json()["type"] == kind
    missing = call(http, gh, "GET", "/users/nobody-here")
    assert missing.status_code == 404
    validate(spec, "/users/{username}", "get", 404, missing.json())
    assert missing.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/users/users#get-a-user",
        "status": "404",
    }


def test_rate_limit_endpoint_validates_and_is_not_counted(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    call(http, gh, "GET", f"/repos/{REPO}")
    r = call(http, gh, "GET", "/rate_limit")
    validate(spec, "/rate_limit", "get", 200, r.json())
    assert r.json()["resources"]["core"]["remaining"] == 4999 == r.json()["rate"]["remaining"]
    assert r.headers["X-RateLimit-Remaining"] == "4999"
    assert [q.counted for q in gh.requests] == [True, False]
    assert gh.rate_limit_remaining(RW) == 4999


def test_documentation_urls_are_those_of_the_description(spec: dict[str, Any]) -> None:
    documented = {
        op["externalDocs"]["url"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "externalDocs" in op
    }
    for method, path, doc in iter_routes():
        assert doc in documented, (method, path, doc)


# --- pagination and since ----------------------------------------------------------------


def test_link_header_has_githubs_format(gh: FakeGitHub, http: requests.Session) -> None:
    """13 comments by 3: five pages whose Link rels, order and URLs follow the recording."""
    for i in range(13):
        gh.add_comment(REPO, ISSUE, author="nikomatsakis", body=f"c{i}")
    recorded = fixture("paginate-issues")
    repo_id = call(http, gh, "GET", f"/repos/{REPO}").json()["id"]
    link_re = re.compile(r'<([^>]+)>; rel="(\w+)"')
    url = f"{gh.url}{COMMENTS}?per_page=3"
    seen: list[int] = []
    for page, record in enumerate(recorded, start=1):
        r = http.get(url, headers={"Authorization": f"token {RW}"}, timeout=10)
        theirs, ours = record["headers"]["link"], r.headers["Link"]
        assert [rel for _, rel in link_re.findall(ours)] == [
            rel for _, rel in link_re.findall(theirs)
        ]
        assert ", ".join(f'<{u}>; rel="{rel}"' for u, rel in link_re.findall(ours)) == ours
        for (their_url, _), (our_url, _) in zip(
            link_re.findall(theirs), link_re.findall(ours), strict=True
        ):
            assert their_url.split("?")[1] == our_url.split("?")[1]  # per_page=3&page=N
            assert our_url.startswith(f"{gh.url}/repositories/{repo_id}/issues/{ISSUE}/comments?")
        seen += [c["id"] for c in r.json()]
        assert len(r.json()) == (3 if page < 5 else 1)
        if page < 5:
            url = r.links["next"]["url"]
    assert seen == sorted(seen) == [c["id"] for c in gh.comments(REPO, ISSUE)]
    assert len(set(seen)) == 13 and seen[0] > 2**31  # large ids, as GitHub's


def test_per_page_default_and_maximum(gh: FakeGitHub, http: requests.Session) -> None:
    for i in range(120):
        gh.add_comment(REPO, ISSUE, author="nikomatsakis", body=f"c{i}")
    r = call(http, gh, "GET", COMMENTS)
    assert len(r.json()) == 30 and r.links["last"]["url"].endswith("?page=4")
    r = call(http, gh, "GET", COMMENTS, params={"per_page": 500})
    assert len(r.json()) == 100 and r.links["last"]["url"].endswith("per_page=500&page=2")
    r = call(http, gh, "GET", COMMENTS, params={"per_page": 100, "page": 2})
    assert len(r.json()) == 20 and set(r.links) == {"prev", "first"}
    empty = call(http, gh, "GET", COMMENTS, params={"since": "2030-01-01T00:00:00Z"})
    assert empty.json() == [] and "Link" not in empty.headers  # one page: no Link at all


def test_since_is_updated_at_or_after(gh: FakeGitHub, http: requests.Session, clock: Clock) -> None:
    old = gh.add_comment(REPO, ISSUE, author="a", body="old")
    clock.advance(hours=1)
    middle = gh.add_comment(REPO, ISSUE, author="b", body="middle")
    clock.advance(hours=1)
    gh.edit_comment(old, "old, edited")  # updated_at moves, id and order do not
    since = (T0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = call(http, gh, "GET", COMMENTS, params={"since": since})
    assert [c["id"] for c in r.json()] == [old, middle]  # at-or-after, id ascending
    assert r.json()[0]["updated_at"] == "2025-03-06T16:00:00Z"
    assert r.json()[0]["created_at"] == "2025-03-06T14:00:00Z"
    later = call(http, gh, "GET", COMMENTS, params={"since": "2025-03-06T15:00:01Z"})
    assert [c["id"] for c in later.json()] == [old]
    bad = call(http, gh, "GET", COMMENTS, params={"since": "yesterday"})
    assert bad.status_code == 422


# --- conditional requests and rate limits -------------------------------------------------


def test_etag_304_is_not_counted(gh: FakeGitHub, http: requests.Session) -> None:
    gh.add_comment(REPO, ISSUE, author="a", body="x")
    first = call(http, gh, "GET", COMMENTS)
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = call(http, gh, "GET", COMMENTS, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert again.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]
    strong = call(http, gh, "GET", COMMENTS, headers={"If-None-Match": etag[2:]})
    assert strong.status_code == 304  # weak comparison
    assert [q.counted for q in gh.requests] == [True, False, False]
    assert gh.rate_limit_remaining(RW) == 4999
    gh.add_comment(REPO, ISSUE, author="a", body="y")
    changed = call(http, gh, "GET", COMMENTS, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert gh.rate_limit_remaining(RW) == 4998


def test_rate_limit_exhaustion_until_reset(
    gh: FakeGitHub, http: requests.Session, clock: Clock, spec: dict[str, Any]
) -> None:
    gh.add_token("ghp_small", login="goals-bot", rate_limit=3)
    for remaining in ("2", "1", "0"):
        r = call(http, gh, "GET", f"/repos/{REPO}", token="ghp_small")
        assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == remaining
    over = call(http, gh, "GET", f"/repos/{REPO}", token="ghp_small")
    assert over.status_code == 403
    validate(spec, "/repos/{owner}/{repo}", "get", 403, over.json())
    user_id = call(http, gh, "GET", "/user", token=RW).json()["id"]  # same user as ghp_small
    assert over.json()["message"].startswith(f"API rate limit exceeded for user ID {user_id}. ")
    assert over.json()["message"].endswith("and timestamp 2025-03-06 14:00:00 UTC.")
    assert over.headers["X-GitHub-Request-Id"] in over.json()["message"]
    assert over.json()["documentation_url"].startswith("https://docs.github.com/rest/")
    assert over.headers["X-RateLimit-Remaining"] == "0" and over.headers["X-RateLimit-Used"] == "3"
    reset = int(over.headers["X-RateLimit-Reset"])
    assert reset == int(T0.timestamp()) + 3600
    assert call(http, gh, "GET", "/rate_limit", token="ghp_small").status_code == 200
    clock.advance(seconds=3599)
    assert call(http, gh, "GET", f"/repos/{REPO}", token="ghp_small").status_code == 403
    clock.advance(seconds=1)
    back = call(http, gh, "GET", f"/repos/{REPO}", token="ghp_small")
    assert back.status_code == 200 and back.headers["X-RateLimit-Remaining"] == "2"
    assert gh.rate_limit_remaining("ghp_small") == 2


# --- writes, permissions and errors -------------------------------------------------------


def test_create_comment(
    gh: FakeGitHub, http: requests.Session, clock: Clock, spec: dict[str, Any]
) -> None:
    clock.advance(minutes=5)
    r = call(http, gh, "POST", COMMENTS, json={"body": "Posted"})
    assert r.status_code == 201
    validate(spec, "/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", 201, r.json())
    body = r.json()
    assert (
        r.headers["Location"]
        == body["url"]
        == f"{gh.url}/repos/{REPO}/issues/comments/{body['id']}"
    )
    assert body["user"]["login"] == "goals-bot" and body["created_at"] == "2025-03-06T14:05:00Z"
    assert gh.comments(REPO, ISSUE) == [body]
    assert gh.issue(REPO, ISSUE)["updated_at"] == "2025-03-06T14:05:00Z"


def test_validation_errors_have_githubs_shape(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    recorded = fixture("errors")[0]["response"]
    path = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
    blank = call(http, gh, "POST", COMMENTS, json={"body": "  "})
    assert blank.status_code == 422
    validate(spec, path, "post", 422, blank.json())
    assert blank.json()["message"] == recorded["message"] == "Validation Failed"
    assert set(blank.json()["errors"][0]) >= set(recorded["errors"][0])
    assert set(recorded) <= set(blank.json())
    missing = call(http, gh, "POST", COMMENTS, json={})
    assert missing.status_code == 422
    validate(spec, path, "post", 422, missing.json())
    assert missing.json()["message"] == 'Invalid request.\n\n"body" wasn\'t supplied.'
    too_long = call(http, gh, "POST", COMMENTS, json={"body": "x" * 65537})
    assert too_long.status_code == 422 and "too long" in too_long.json()["errors"][0]["message"]
    broken = call(
        http, gh, "POST", COMMENTS, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["message"] == "Problems parsing JSON"
    assert gh.comments(REPO, ISSUE) == []


def test_not_found_and_bad_credentials(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    nowhere = call(http, gh, "POST", f"/repos/{REPO}/issues/999/comments", json={"body": "x"})
    assert nowhere.status_code == 404
    validate(
        spec, "/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", 404, nowhere.json()
    )
    assert nowhere.json()["documentation_url"].endswith("#create-an-issue-comment")
    # A private repository the token cannot see is indistinguishable from a missing one.
    hidden = call(http, gh, "GET", "/repos/rust-lang/secret", token=LIMITED)
    unknown = call(http, gh, "GET", "/repos/rust-lang/no-such-repo", token=LIMITED)
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json() == unknown.json()
    validate(spec, "/repos/{owner}/{repo}", "get", 404, hidden.json())
    assert call(http, gh, "GET", "/repos/rust-lang/secret", token=RW).status_code == 200
    assert call(http, gh, "GET", "/repos/rust-lang/secret", token=None).status_code == 404
    bad = call(http, gh, "GET", f"/repos/{REPO}", token="ghp_wrong")
    assert bad.status_code == 401
    assert bad.json() == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }
    validate(spec, "/user", "get", 401, bad.json())
    assert bad.headers["X-RateLimit-Limit"] == "60" and not gh.requests[-1].counted
    assert call(http, gh, "GET", "/no/such/endpoint").status_code == 404


def test_read_only_token_cannot_write(
    gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]
) -> None:
    r = call(http, gh, "POST", COMMENTS, token=RO, json={"body": "hello"})
    assert r.status_code == 403
    validate(spec, "/repos/{owner}/{repo}/issues/{issue_number}/comments", "post", 403, r.json())
    assert r.json()["message"] == "Resource not accessible by personal access token"
    assert call(http, gh, "GET", COMMENTS, token=RO).status_code == 200
    anonymous = call(http, gh, "POST", COMMENTS, token=None, json={"body": "hello"})
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Requires authentication"
    assert gh.comments(REPO, ISSUE) == []


def test_edit_then_delete_then_404(
    gh: FakeGitHub, http: requests.Session, clock: Clock, spec: dict[str, Any]
) -> None:
    cid = gh.add_comment(REPO, ISSUE, author="goals-bot", body="v1")
    url = f"/repos/{REPO}/issues/comments/{cid}"
    clock.advance(minutes=1)
    edited = call(http, gh, "PATCH", url, json={"body": "v2"})
    assert edited.status_code == 200
    validate(
        spec, "/repos/{owner}/{repo}/issues/comments/{comment_id}", "patch", 200, edited.json()
    )
    assert edited.json()["updated_at"] == "2025-03-06T14:01:00Z" and edited.json()["body"] == "v2"
    gone = call(http, gh, "DELETE", url)
    assert gone.status_code == 204 and gone.content == b""
    after = call(http, gh, "GET", url)
    assert after.status_code == 404
    validate(spec, "/repos/{owner}/{repo}/issues/comments/{comment_id}", "get", 404, after.json())
    assert gh.comments(REPO, ISSUE) == [] and gh.issue(REPO, ISSUE)["comments"] == 0
    assert call(http, gh, "DELETE", url).status_code == 404
    # A comment is only found under its own repository.
    other = gh.add_comment(REPO, ISSUE, author="a", body="x")
    assert (
        call(http, gh, "GET", f"/repos/rust-lang/secret/issues/comments/{other}").status_code == 404
    )


def test_patch_issue_body(gh: FakeGitHub, http: requests.Session, spec: dict[str, Any]) -> None:
    r = call(http, gh, "PATCH", f"/repos/{REPO}/issues/{ISSUE}", json={"body": "New"})
    assert r.status_code == 200
    validate(spec, "/repos/{owner}/{repo}/issues/{issue_number}", "patch", 200, r.json())
    gh.edit_issue_body(REPO, ISSUE, "Newer")
    assert gh.issue(REPO, ISSUE)["body"] == "Newer"
    assert (
        call(
            http, gh, "PATCH", f"/repos/{REPO}/issues/{ISSUE}", token=RO, json={"body": "x"}
        ).status_code
        == 403
    )


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "secondary", "message"),
    [
        (403, True, "You have exceeded a secondary rate limit"),
        (429, True, "You have exceeded a secondary rate limit"),
        (403, False, "API rate limit exceeded for user ID"),
        (500, False, "Server Error"),
        (503, False, "Service Unavailable"),
    ],
)
def test_fail_next_fires_once_and_is_counted(
    gh: FakeGitHub, http: requests.Session, status: int, secondary: bool, message: str
) -> None:
    gh.faults.fail_next(status=status, times=2, retry_after=60, secondary=secondary)
    for _ in range(2):
        r = call(http, gh, "GET", f"/repos/{REPO}")
        assert r.status_code == status and r.json()["message"].startswith(message)
        assert r.headers["Retry-After"] == "60"
        assert "X-RateLimit-Remaining" in r.headers
    if status == 403 and not secondary:
        assert r.headers["X-RateLimit-Remaining"] == "0"
    assert call(http, gh, "GET", f"/repos/{REPO}").status_code == 200
    assert gh.faults.fired == {"fail": 2}
    assert [q.fault for q in gh.requests] == ["fail", "fail", None]
    assert gh.rate_limit_remaining(RW) == 4999  # the failed requests were not performed


def test_502_is_an_html_page(gh: FakeGitHub, http: requests.Session) -> None:
    gh.faults.fail_next(status=502)
    r = call(http, gh, "GET", f"/repos/{REPO}")
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    assert gh.faults.fired == {"fail": 1}


def test_fault_filters(gh: FakeGitHub, http: requests.Session) -> None:
    gh.faults.fail_next(status=500, method="POST", path="/comments")
    assert call(http, gh, "GET", COMMENTS).status_code == 200
    assert call(http, gh, "POST", COMMENTS, json={"body": "x"}).status_code == 500
    assert gh.faults.pending == 0 and gh.comments(REPO, ISSUE) == []


def test_cut_next_drops_the_connection_before_anything(
    gh: FakeGitHub, http: requests.Session
) -> None:
    gh.faults.cut_next()
    with pytest.raises(requests.ConnectionError):
        call(http, gh, "POST", COMMENTS, json={"body": "lost"})
    assert gh.comments(REPO, ISSUE) == []
    assert gh.faults.fired == {"cut": 1}
    assert gh.requests[-1].status == 0 and not gh.requests[-1].counted
    assert call(http, gh, "POST", COMMENTS, json={"body": "again"}).status_code == 201


def test_cut_after_commit_performs_then_drops(gh: FakeGitHub, http: requests.Session) -> None:
    gh.faults.cut_after_commit_next()
    with pytest.raises(requests.ConnectionError):
        call(http, gh, "POST", COMMENTS, json={"body": "did it land?"})
    assert [c["body"] for c in gh.comments(REPO, ISSUE)] == ["did it land?"]
    assert gh.faults.fired == {"cut_after_commit": 1}
    assert gh.requests[-1].counted and gh.requests[-1].body == {"body": "did it land?"}
    assert gh.rate_limit_remaining(RW) == 4999


# --- GitHub App ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_key() -> AppKeyPair:
    return AppKeyPair.generate(1024)


@pytest.fixture
def app(gh: FakeGitHub, app_key: AppKeyPair) -> AppKeyPair:
    gh.add_app(app_id=123, public_key_pem=app_key.public_pem, installation_id=456, repos=[REPO])
    return app_key


def test_app_token_exchange(
    gh: FakeGitHub, http: requests.Session, app: AppKeyPair, clock: Clock, spec: dict[str, Any]
) -> None:
    jwt = {"Authorization": f"Bearer {app.jwt(123, clock.now)}"}
    me = call(http, gh, "GET", "/app", token=None, headers=jwt)
    assert me.status_code == 200
    validate(spec, "/app", "get", 200, me.json())
    inst = call(http, gh, "GET", f"/repos/{REPO}/installation", token=None, headers=jwt)
    assert inst.status_code == 200 and inst.json()["id"] == 456
    validate(spec, "/repos/{owner}/{repo}/installation", "get", 200, inst.json())
    made = call(
        http,
        gh,
        "POST",
        inst.json()["access_tokens_url"].removeprefix(gh.url),
        token=None,
        headers=jwt,
    )
    assert made.status_code == 201
    validate(spec, "/app/installations/{installation_id}/access_tokens", "post", 201, made.json())
    token = made.json()["token"]
    assert re.fullmatch(r"ghs_[A-Za-z0-9]{36}", token)
    assert made.json()["expires_at"] == "2025-03-06T15:00:00Z"
    for scheme in ("token", "Bearer"):
        r = call(
            http,
            gh,
            "POST",
            COMMENTS,
            token=None,
            headers={"Authorization": f"{scheme} {token}"},
            json={"body": scheme},
        )
        assert r.status_code == 201
        assert r.json()["user"]["login"] == "goals-bot[bot]" and r.json()["user"]["type"] == "Bot"
        assert r.json()["performed_via_github_app"]["id"] == 123
        assert "X-OAuth-Scopes" not in r.headers
    clock.advance(hours=1)
    expired = call(http, gh, "GET", COMMENTS, token=token)
    assert expired.status_code == 401 and expired.json()["message"] == "Bad credentials"


def test_app_jwt_is_really_verified(
    gh: FakeGitHub, http: requests.Session, app: AppKeyPair, clock: Clock
) -> None:
    def app_get(credential: str) -> requests.Response:
        return call(
            http, gh, "GET", "/app", token=None, headers={"Authorization": f"Bearer {credential}"}
        )

    other = AppKeyPair.generate(1024)
    assert app_get(other.jwt(123, clock.now)).status_code == 401  # wrong key
    assert app_get(app.jwt(999, clock.now)).status_code == 401  # unknown app
    header, _payload, signature = app.jwt(123, clock.now).split(".")
    forged = appauth.b64url_encode(json.dumps({"iss": 123, "iat": 0, "exp": 2**40}).encode())
    assert app_get(f"{header}.{forged}.{signature}").status_code == 401
    too_long = app_get(app.jwt(123, clock.now, lifetime=3600))
    assert too_long.status_code == 401 and "too far in the future" in too_long.json()["message"]
    stale = app.jwt(123, clock.now)
    clock.advance(minutes=10)
    assert "Expiration time" in app_get(stale).json()["message"]
    assert app_get(app.jwt(123, clock.now)).status_code == 200
    assert app_get(app.jwt("Iv23li00000000000123", clock.now)).status_code == 200  # client id
    # A personal token is not an app's JWT, and a JWT is not for repository endpoints.
    assert (
        call(http, gh, "GET", "/app").json()["message"] == "A JSON web token could not be decoded"
    )
    jwt_on_repo = call(
        http,
        gh,
        "GET",
        f"/repos/{REPO}",
        token=None,
        headers={"Authorization": f"Bearer {app.jwt(123, clock.now)}"},
    )
    assert jwt_on_repo.status_code == 403


def test_installation_token_scope(
    gh: FakeGitHub, http: requests.Session, app: AppKeyPair, clock: Clock
) -> None:
    jwt = {"Authorization": f"Bearer {app.jwt(123, clock.now)}"}
    read_only = call(
        http,
        gh,
        "POST",
        "/app/installations/456/access_tokens",
        token=None,
        headers=jwt,
        json={"permissions": {"issues": "read"}},
    )
    token = read_only.json()["token"]
    denied = call(http, gh, "POST", COMMENTS, token=token, json={"body": "x"})
    assert denied.status_code == 403
    assert denied.json()["message"] == "Resource not accessible by integration"
    assert (
        call(
            http, gh, "GET", "/app/installations/457/access_tokens", token=None, headers=jwt
        ).status_code
        == 404
    )
    assert (
        call(
            http, gh, "POST", "/app/installations/457/access_tokens", token=None, headers=jwt
        ).status_code
        == 404
    )
    assert (
        call(
            http, gh, "GET", "/repos/rust-lang/secret/installation", token=None, headers=jwt
        ).status_code
        == 404
    )


def test_stdlib_rs256_matches_the_signer(app_key: AppKeyPair) -> None:
    key = appauth.load_rsa_public_key(app_key.public_pem)
    assert key.n == appauth.load_rsa_public_key(app_key.private_pem).n
    signature = app_key.sign(b"message")
    assert appauth.verify_rs256(key, b"message", signature, stdlib=True)
    assert not appauth.verify_rs256(key, b"massage", signature, stdlib=True)
    assert not appauth.verify_rs256(key, b"message", signature[:-1] + b"\0", stdlib=True)


# --- the package stands alone ---------------------------------------------------------------


def test_fakegithub_imports_nothing_from_the_bot() -> None:
    package = Path(__file__).parent.parent / "fakegithub"
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.startswith("zulip_goals_bot") for n in names), source.name
