"""What the emulated GitHub holds, and the JSON api.github.com renders it as.

The shapes follow GitHub's OpenAPI description (``simple-user``, ``full-repository``, ``issue``,
``issue-comment``, ``installation``, ``integration``) and the recorded octokit fixtures: same key
order, URL templates and legacy base64 node ids. Web URLs always point at ``https://github.com``
(a client builds links for people from ``html_url``); API URLs point at the emulator, because
GitHub's own ``url`` fields are where a client is expected to go next.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "App",
    "Comment",
    "Issue",
    "Repo",
    "Token",
    "User",
    "github_time",
    "node_id",
]

WEB = "https://github.com"


def github_time(moment: datetime) -> str:
    """``2025-03-06T14:00:00Z``: GitHub writes UTC, whole seconds, with a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, ident: int) -> str:
    """GitHub's legacy global node id: base64 of ``0<len(kind)>:<kind><id>`` (``MDQ6VXNlcjE=``)."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode("ascii")


@dataclass
class User:
    """An account: ``User``, ``Bot`` (an app's ``name[bot]``) or ``Organization``."""

    login: str
    id: int
    type: str
    created_at: datetime
    name: str | None = None
    app_id: int | None = None

    def simple(self, api: str) -> dict[str, Any]:
        """``simple-user``, the shape embedded in comments, issues and repositories."""
        login = self.login
        avatar = (
            f"https://avatars.githubusercontent.com/in/{self.app_id}?v=4"
            if self.app_id is not None
            else f"https://avatars.githubusercontent.com/u/{self.id}?v=4"
        )
        html = (
            f"{WEB}/apps/{login.removesuffix('[bot]')}" if self.type == "Bot" else f"{WEB}/{login}"
        )
        return {
            "login": login,
            "id": self.id,
            "node_id": node_id(self.type, self.id),
            "avatar_url": avatar,
            "gravatar_id": "",
            "url": f"{api}/users/{login}",
            "html_url": html,
            "followers_url": f"{api}/users/{login}/followers",
            "following_url": f"{api}/users/{login}/following{{/other_user}}",
            "gists_url": f"{api}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{api}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/users/{login}/subscriptions",
            "organizations_url": f"{api}/users/{login}/orgs",
            "repos_url": f"{api}/users/{login}/repos",
            "events_url": f"{api}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{api}/users/{login}/received_events",
            "type": self.type,
            "user_view_type": "public",
            "site_admin": False,
        }

    def full(self, api: str, *, private: bool) -> dict[str, Any]:
        """``public-user`` (``GET /users/{u}``) or ``private-user`` (``GET /user``)."""
        out = self.simple(api)
        out["user_view_type"] = "private" if private else "public"
        out.update(
            {
                "name": self.name,
                "company": None,
                "blog": "",
                "location": None,
                "email": None,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": github_time(self.created_at),
                "updated_at": github_time(self.created_at),
            }
        )
        if private:
            out.update(
                {
                    "private_gists": 0,
                    "total_private_repos": 0,
                    "owned_private_repos": 0,
                    "disk_usage": 0,
                    "collaborators": 0,
                    "two_factor_authentication": True,
                    "plan": {
                        "name": "free",
                        "space": 976562499,
                        "collaborators": 0,
                        "private_repos": 10000,
                    },
                }
            )
        return out


@dataclass
class Repo:
    """A repository; ``owner`` and ``name`` keep the case they were created with."""

    owner: User
    name: str
    id: int
    private: bool
    created_at: datetime
    description: str | None = None
    default_branch: str = "main"
    issues: dict[int, Issue] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    def to_json(self, api: str, *, push: bool) -> dict[str, Any]:
        """``full-repository``, key for key in the order of the get-repository fixture."""
        full = self.full_name
        base = f"{api}/repos/{full}"
        when = github_time(self.created_at)
        open_issues = sum(1 for issue in self.issues.values() if issue.state == "open")
        return {
            "id": self.id,
            "node_id": node_id("Repository", self.id),
            "name": self.name,
            "full_name": full,
            "private": self.private,
            "owner": self.owner.simple(api),
            "html_url": f"{WEB}/{full}",
            "description": self.description,
            "fork": False,
            "url": base,
            "forks_url": f"{base}/forks",
            "keys_url": f"{base}/keys{{/key_id}}",
            "collaborators_url": f"{base}/collaborators{{/collaborator}}",
            "teams_url": f"{base}/teams",
            "hooks_url": f"{base}/hooks",
            "issue_events_url": f"{base}/issues/events{{/number}}",
            "events_url": f"{base}/events",
            "assignees_url": f"{base}/assignees{{/user}}",
            "branches_url": f"{base}/branches{{/branch}}",
            "tags_url": f"{base}/tags",
            "blobs_url": f"{base}/git/blobs{{/sha}}",
            "git_tags_url": f"{base}/git/tags{{/sha}}",
            "git_refs_url": f"{base}/git/refs{{/sha}}",
            "trees_url": f"{base}/git/trees{{/sha}}",
            "statuses_url": f"{base}/statuses/{{sha}}",
            "languages_url": f"{base}/languages",
            "stargazers_url": f"{base}/stargazers",
            "contributors_url": f"{base}/contributors",
            "subscribers_url": f"{base}/subscribers",
            "subscription_url": f"{base}/subscription",
            "commits_url": f"{base}/commits{{/sha}}",
            "git_commits_url": f"{base}/git/commits{{/sha}}",
            "comments_url": f"{base}/comments{{/number}}",
            "issue_comment_url": f"{base}/issues/comments{{/number}}",
            "contents_url": f"{base}/contents/{{+path}}",
            "compare_url": f"{base}/compare/{{base}}...{{head}}",
            "merges_url": f"{base}/merges",
            "archive_url": f"{base}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{base}/downloads",
            "issues_url": f"{base}/issues{{/number}}",
            "pulls_url": f"{base}/pulls{{/number}}",
            "milestones_url": f"{base}/milestones{{/number}}",
            "notifications_url": f"{base}/notifications{{?since,all,participating}}",
            "labels_url": f"{base}/labels{{/name}}",
            "releases_url": f"{base}/releases{{/id}}",
            "deployments_url": f"{base}/deployments",
            "created_at": when,
            "updated_at": when,
            "pushed_at": when,
            "git_url": f"git://github.com/{full}.git",
            "ssh_url": f"git@github.com:{full}.git",
            "clone_url": f"{WEB}/{full}.git",
            "svn_url": f"{WEB}/{full}",
            "homepage": None,
            "size": 0,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": None,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_issues,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if self.private else "public",
            "forks": 0,
            "open_issues": open_issues,
            "watchers": 0,
            "default_branch": self.default_branch,
            "permissions": {
                "admin": False,
                "maintain": False,
                "push": push,
                "triage": push,
                "pull": True,
            },
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_rebase_merge": True,
            "allow_auto_merge": False,
            "delete_branch_on_merge": False,
            "allow_update_branch": False,
            "use_squash_pr_title_as_default": False,
            **(
                {"organization": self.owner.simple(api)}
                if self.owner.type == "Organization"
                else {}
            ),
            "network_count": 0,
            "subscribers_count": 0,
        }


def _reactions(url: str) -> dict[str, Any]:
    return {
        "url": url,
        "total_count": 0,
        "+1": 0,
        "-1": 0,
        "laugh": 0,
        "hooray": 0,
        "confused": 0,
        "heart": 0,
        "rocket": 0,
        "eyes": 0,
    }


@dataclass
class Issue:
    """An issue of a repository; ``comments`` holds the live (undeleted) ones by id."""

    repo: Repo
    number: int
    id: int
    title: str
    body: str | None
    state: str
    author: User
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    locked: bool = False
    comments: dict[int, Comment] = field(default_factory=dict)

    def to_json(self, api: str) -> dict[str, Any]:
        """``issue``, in the key order of the paginate-issues fixture."""
        base = f"{api}/repos/{self.repo.full_name}/issues/{self.number}"
        return {
            "url": base,
            "repository_url": f"{api}/repos/{self.repo.full_name}",
            "labels_url": f"{base}/labels{{/name}}",
            "comments_url": f"{base}/comments",
            "events_url": f"{base}/events",
            "html_url": f"{WEB}/{self.repo.full_name}/issues/{self.number}",
            "id": self.id,
            "node_id": node_id("Issue", self.id),
            "number": self.number,
            "title": self.title,
            "user": self.author.simple(api),
            "labels": [],
            "state": self.state,
            "locked": self.locked,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(self.comments),
            "created_at": github_time(self.created_at),
            "updated_at": github_time(self.updated_at),
            "closed_at": github_time(self.closed_at) if self.closed_at else None,
            "author_association": association(self.repo, self.author),
            "active_lock_reason": None,
            "body": self.body,
            "closed_by": None,
            "reactions": _reactions(f"{base}/reactions"),
            "timeline_url": f"{base}/timeline",
            "performed_via_github_app": None,
            "state_reason": "completed" if self.state == "closed" else None,
        }


def association(repo: Repo, user: User) -> str:
    """``author_association``: the emulator knows owners and everybody else."""
    return "OWNER" if user.login.lower() == repo.owner.login.lower() else "NONE"


@dataclass
class Comment:
    """An issue comment. ``via_app`` is the app whose installation token posted it, if any."""

    id: int
    issue: Issue
    author: User
    body: str
    created_at: datetime
    updated_at: datetime
    via_app: App | None = None
    author_association: str | None = None

    def to_json(self, api: str) -> dict[str, Any]:
        """``issue-comment``, as ``GET .../issues/{n}/comments`` lists it."""
        repo = self.issue.repo
        url = f"{api}/repos/{repo.full_name}/issues/comments/{self.id}"
        return {
            "url": url,
            "html_url": f"{WEB}/{repo.full_name}/issues/{self.issue.number}#issuecomment-{self.id}",
            "issue_url": f"{api}/repos/{repo.full_name}/issues/{self.issue.number}",
            "id": self.id,
            "node_id": node_id("IssueComment", self.id),
            "user": self.author.simple(api),
            "created_at": github_time(self.created_at),
            "updated_at": github_time(self.updated_at),
            "body": self.body,
            "author_association": self.author_association or association(repo, self.author),
            "reactions": _reactions(f"{url}/reactions"),
            "performed_via_github_app": self.via_app.to_json(api) if self.via_app else None,
        }


@dataclass
class App:
    """A GitHub App with one installation, on the account owning its repositories."""

    app_id: int
    public_key: Any  # appauth.RSAPublicKey; Any keeps this module free of that import
    installation_id: int
    repos: list[str]
    bot: User
    owner: User
    slug: str
    created_at: datetime
    client_id: str
    permissions: dict[str, str]

    def to_json(self, api: str) -> dict[str, Any]:
        """``integration`` (``GET /app``, and ``performed_via_github_app`` of its comments)."""
        return {
            "id": self.app_id,
            "client_id": self.client_id,
            "slug": self.slug,
            "node_id": node_id("Integration", self.app_id),
            "owner": self.owner.simple(api),
            "name": self.slug,
            "description": "",
            "external_url": f"{WEB}/{self.owner.login}",
            "html_url": f"{WEB}/apps/{self.slug}",
            "created_at": github_time(self.created_at),
            "updated_at": github_time(self.created_at),
            "permissions": dict(self.permissions),
            "events": ["issue_comment", "issues"],
        }

    def installation_json(self, api: str) -> dict[str, Any]:
        """``installation`` (``GET /repos/{o}/{r}/installation``)."""
        return {
            "id": self.installation_id,
            "client_id": self.client_id,
            "account": self.owner.simple(api),
            "repository_selection": "selected",
            "access_tokens_url": f"{api}/app/installations/{self.installation_id}/access_tokens",
            "repositories_url": f"{api}/installation/repositories",
            "html_url": f"{WEB}/organizations/{self.owner.login}/settings/installations/"
            f"{self.installation_id}",
            "app_id": self.app_id,
            "app_slug": self.slug,
            "target_id": self.owner.id,
            "target_type": self.owner.type,
            "permissions": dict(self.permissions),
            "events": ["issue_comment", "issues"],
            "created_at": github_time(self.created_at),
            "updated_at": github_time(self.created_at),
            "single_file_name": None,
            "has_multiple_single_files": False,
            "single_file_paths": [],
            "suspended_by": None,
            "suspended_at": None,
        }


@dataclass
class Token:
    """A credential. ``repos=None``: every repository the account can see (a classic PAT)."""

    value: str
    user: User
    scopes: tuple[str, ...]
    can_write: bool
    rate_limit: int
    repos: frozenset[str] | None = None  # lower-cased full names
    app: App | None = None  # set for installation tokens (ghs_...)
    expires_at: datetime | None = None
