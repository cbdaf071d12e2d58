"""An in-memory fake of the Hugging Face Hub HTTP API, for tests that push and pull without a network.

The server is plain standard library (``http.server`` on 127.0.0.1, a free port, a daemon thread) and speaks just
enough of the Hub API for the *real* ``huggingface_hub`` client (``create_repo``, ``upload_folder``,
``create_commit``, ``create_branch``, ``hf_hub_download``, ``snapshot_download``, ``list_repo_tree``, ...) and
``transformers`` (``push_to_hub``, ``from_pretrained(repo_id, revision=...)``) to work against it. Only model repos
are stored. Every file is committed as a regular git blob (the preupload answer is "regular"), so content travels
inline as base64 and neither LFS nor Xet is involved. Like the Hub, the preupload answer carries the git-sha1 of the
file already at each path, which is how the client skips unchanged files and makes no commit at all when nothing
changed.

Pointing the clients at the fake
--------------------------------
``huggingface_hub.constants`` reads ``HF_ENDPOINT``, ``HF_HOME``... once, at import. Setting the environment is
therefore enough only for a process that has not imported ``huggingface_hub`` yet: use :meth:`FakeHub.env` for
subprocesses. Inside a running test process, :func:`use_fake_hub` patches (and, through ``monkeypatch``, restores):

* the environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``, telemetry off, offline flags removed), for children
  and for the token lookup, which reads ``HF_TOKEN`` on every call;
* ``huggingface_hub.constants``: ``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (``hf_hub_url`` builds download URLs
  from it, not from ``ENDPOINT``), ``HF_URL_HOSTS``, the cache and token paths, ``HF_HUB_OFFLINE`` and
  ``HF_HUB_DISABLE_TELEMETRY``. Library code reads them as ``constants.X`` at call time, so patching the module
  attributes works;
* two objects that copied the endpoint when they were built: ``huggingface_hub.hf_api.api`` (the ``HfApi`` behind
  the top-level ``huggingface_hub.upload_folder``, ``create_repo``, ...) and ``transformers.utils.hub._hf_api`` (the
  lazily built ``HfApi`` that ``push_to_hub`` and ``from_pretrained`` use), which is reset to ``None`` so that it is
  rebuilt against the fake.

An ``HfApi()`` built by the test itself after patching needs nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import pytest

USER = "fake-user"
TOKEN = "hf_fake_token_for_tests"
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")


def git_blob_sha(data: bytes) -> str:
    """The git object id of a file, which the Hub uses as ETag and preupload oid of regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    sha: str
    parent: str | None
    files: dict[str, bytes]
    message: str
    date: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch (or "refs/pr/N") -> commit sha
    commits: dict[str, Commit] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)  # number -> title; the PR's ref is a branch


class _Response(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


class HubError(Exception):
    """An error answer; ``code`` goes to X-Error-Code, from which the client picks its exception class."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.headers = {**({"X-Error-Code": code} if code else {}), **(headers or {})}


def _json(payload: Any, status: int = 200) -> _Response:
    return _Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # the one format huggingface_hub parses


class FakeHub:
    """A fake Hub server holding model repos in memory: branches point at commits, commits hold whole file trees."""

    def __init__(self, user: str = USER) -> None:
        self.user = user
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request, to debug with
        self._lock = threading.RLock()
        self._counter = 0
        self._server: _Server | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-hub", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self, home: str | os.PathLike[str]) -> dict[str, str]:
        """Environment variables that point a fresh process (one that imports huggingface_hub later) at this hub."""
        return {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(home),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        }

    # -- inspection from tests -------------------------------------------------------------------------------------

    def commits(self, repo_id: str, branch: str = "main") -> list[Commit]:
        """History of a branch, newest first (like ``git log``), including the repo's initial empty commit."""
        with self._lock:
            repo = self._repo(repo_id)
            history, sha = [], self._resolve(repo, branch)
            while sha is not None:
                history.append(repo.commits[sha])
                sha = repo.commits[sha].parent
            return history

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The file tree at a branch or commit sha."""
        with self._lock:
            repo = self._repo(repo_id)
            return dict(repo.commits[self._resolve(repo, revision)].files)

    def branches(self, repo_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._repo(repo_id).branches)

    # -- state -----------------------------------------------------------------------------------------------------

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def _resolve(self, repo: Repo, revision: str) -> str:
        """A branch name, a PR ref or a full commit sha -> commit sha."""
        if revision in repo.branches:
            return repo.branches[revision]
        if _COMMIT_SHA.fullmatch(revision) and revision in repo.commits:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _open_pull_request(self, repo: Repo, title: str) -> int:
        number = len(repo.pull_requests) + 1
        repo.pull_requests[number] = title
        repo.branches[f"refs/pr/{number}"] = repo.branches["main"]
        return number

    def _new_commit(self, repo: Repo, parent: str | None, files: dict[str, bytes], message: str) -> str:
        # A counter stands in for git's timestamp, so that two identical commits still get distinct shas.
        self._counter += 1
        digest = hashlib.sha1(f"{parent}\0{message}\0{self._counter}".encode())
        for path in sorted(files):
            digest.update(f"\0{path}\0{git_blob_sha(files[path])}".encode())
        sha = digest.hexdigest()
        repo.commits[sha] = Commit(sha, parent, files, message)
        return sha

    # -- routing ---------------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes, content_type: str) -> _Response:
        """Answer one request. Path segments are unquoted one by one, so a revision like ``refs%2Fpr%2F1`` stays one
        segment while a file path sent with plain slashes is rejoined."""
        split = urlsplit(target)
        parts = [unquote(part) for part in split.path.split("/")[1:]]
        query = {key: values[-1] for key, values in parse_qs(split.query).items()}
        with self._lock:
            match parts:
                case ["api", "whoami-v2"]:
                    return _json({"type": "user", "name": self.user, "fullname": "Fake User", "orgs": [], "auth": {}})
                case ["api", "validate-yaml"]:
                    return _json({"errors": [], "warnings": []})
                case ["api", "repos", "create"] if method == "POST":
                    return self._create_repo(json.loads(body))
                case ["api", "models", namespace, name, *rest]:
                    return self._model_api(method, f"{namespace}/{name}", rest, query, body, content_type)
                case [namespace, name, "resolve", revision, *path] if path and method in ("GET", "HEAD"):
                    return self._resolve_file(f"{namespace}/{name}", revision, "/".join(path))
            raise HubError(501, f"The fake hub does not implement {method} {split.path}")

    def _create_repo(self, payload: dict[str, Any]) -> _Response:
        if payload.get("type", "model") != "model":
            raise HubError(400, "The fake hub only stores model repos")
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:  # the client reads "url" even from the 409 answer
            return _json({"error": "You already created this model repo", "url": url}, 409)
        repo = self.repos[repo_id] = Repo()
        repo.branches["main"] = self._new_commit(repo, None, {}, "initial commit")
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _model_api(
        self, method: str, repo_id: str, rest: list[str], query: dict[str, str], body: bytes, content_type: str
    ) -> _Response:
        repo = self._repo(repo_id)
        match method, rest:
            case "GET", []:
                return _json(self._info(repo_id, repo, repo.branches["main"]))
            case "GET", ["revision", revision]:
                return _json(self._info(repo_id, repo, self._resolve(repo, revision)))
            case "GET", ["refs"]:
                refs: dict[str, list[dict[str, str]]] = {"branches": [], "converts": [], "tags": [], "pullRequests": []}
                for name, sha in sorted(repo.branches.items()):
                    pr = name.startswith("refs/pr/")
                    ref = {"name": name, "ref": name if pr else f"refs/heads/{name}", "targetCommit": sha}
                    refs["pullRequests" if pr else "branches"].append(ref)
                return _json(refs)
            case "GET", ["tree", revision, *path]:
                files = repo.commits[self._resolve(repo, revision)].files
                return _json(_tree(files, "/".join(path), query.get("recursive", "").lower() in ("1", "true")))
            case "POST", ["paths-info", revision]:
                files = repo.commits[self._resolve(repo, revision)].files
                if content_type.startswith("application/json"):
                    paths = json.loads(body)["paths"]
                else:  # the client sends a form: paths=a&paths=b&expand=False
                    paths = parse_qs(body.decode()).get("paths", [])
                entries = {entry["path"]: entry for entry in _tree(files, "", recursive=True)}
                return _json([entries[path.strip("/")] for path in paths if path.strip("/") in entries])
            case "POST", ["preupload", revision]:
                files = repo.commits[self._resolve(repo, revision)].files
                answers = []
                for item in json.loads(body)["files"]:
                    oid = git_blob_sha(files[item["path"]]) if item["path"] in files else None
                    answers.append({"path": item["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
                return _json({"files": answers})
            case "POST", ["commit", revision]:
                return self._commit(repo_id, repo, revision, body, create_pr=query.get("create_pr") == "1")
            case "POST", ["branch", branch]:
                if branch in repo.branches:
                    raise HubError(409, f"Branch {branch} already exists")
                starting_point = (json.loads(body) if body else {}).get("startingPoint") or "main"
                repo.branches[branch] = self._resolve(repo, starting_point)
                return _json({})
            case "POST", ["discussions"] if json.loads(body).get("pullRequest"):
                return _json({"num": self._open_pull_request(repo, json.loads(body)["title"])})
            case "GET", ["discussions", number] if number.isdigit() and int(number) in repo.pull_requests:
                return _json(self._pull_request(repo_id, repo, int(number)))
            case "DELETE", ["branch", branch]:
                if branch not in repo.branches or branch == "main":
                    raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                del repo.branches[branch]
                return _json({})
        raise HubError(501, f"The fake hub does not implement {method} /api/models/{repo_id}/{'/'.join(rest)}")

    def _pull_request(self, repo_id: str, repo: Repo, number: int) -> dict[str, Any]:
        """The discussion details that ``create_pull_request`` reads back (``upload_folder(create_pr=True)`` opens
        its PR this way, then commits to ``refs/pr/N``)."""
        return {
            "num": number,
            "title": repo.pull_requests[number],
            "status": "draft",
            "isPullRequest": True,
            "author": {"name": self.user},
            "createdAt": _date(repo.commits[repo.branches[f"refs/pr/{number}"]].date),
            "repo": {"name": repo_id, "type": "model"},
            "events": [],
            "changes": {"base": "refs/heads/main"},
            "filesWithConflicts": [],
        }

    def _info(self, repo_id: str, repo: Repo, sha: str) -> dict[str, Any]:
        commit = repo.commits[sha]
        siblings = [
            {"rfilename": path, "size": len(data), "blobId": git_blob_sha(data)}
            for path, data in sorted(commit.files.items())
        ]
        return {
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "lastModified": _date(commit.date),
            "tags": [],
            "siblings": siblings,
        }

    def _commit(self, repo_id: str, repo: Repo, revision: str, body: bytes, create_pr: bool) -> _Response:
        """Apply an NDJSON commit (header, file, deletedFile, deletedFolder lines) on top of a branch."""
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commits go to branches)", "RevisionNotFound")
        head = repo.branches[revision]
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        if header.get("parentCommit") not in (None, head):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[head].files)
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: data for path, data in files.items() if not path.startswith(prefix)}
            elif key != "header":
                raise HubError(400, f"The fake hub does not accept {key!r} commit lines (no LFS, no Xet)")
        message = header["summary"] + (f"\n\n{header['description']}" if header.get("description") else "")
        sha = self._new_commit(repo, head, files, message)
        pr_url = None
        if create_pr:  # create_commit(create_pr=True): open a PR and commit to its ref instead
            number = self._open_pull_request(repo, header["summary"])
            revision, pr_url = f"refs/pr/{number}", f"{self.url}/{repo_id}/discussions/{number}"
        repo.branches[revision] = sha
        return _json({"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": pr_url})

    def _resolve_file(self, repo_id: str, revision: str, path: str) -> _Response:
        repo = self._repo(repo_id)
        sha = self._resolve(repo, revision)
        files = repo.commits[sha].files
        if path not in files:  # X-Repo-Commit lets the client cache the file's absence
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        data = files[path]
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": sha, "ETag": f'"{git_blob_sha(data)}"'}
        return _Response(200, data, headers)


def _tree(files: dict[str, bytes], base: str, recursive: bool) -> list[dict[str, Any]]:
    """Tree entries below ``base`` ("" is the root), in the Hub's JSON shape: files and the folders implied by them."""
    base = base.strip("/")
    folders = {str(parent) for path in files for parent in Path(path).parents if str(parent) != "."}
    if base and base not in folders:
        raise HubError(404, f"Entry not found: {base}", "EntryNotFound")

    def wanted(path: str) -> bool:
        inside = path.startswith(f"{base}/") if base else True
        return inside and (recursive or str(Path(path).parent) == (base or "."))

    entries = [
        {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha(data)}
        for path, data in files.items()
        if wanted(path)
    ]
    for folder in filter(wanted, folders):  # a folder's oid: any digest of its content will do
        listing = "".join(
            f"{path}\0{git_blob_sha(files[path])}\0" for path in sorted(files) if path.startswith(f"{folder}/")
        )
        entries.append(
            {"type": "directory", "path": folder, "size": 0, "oid": hashlib.sha1(listing.encode()).hexdigest()}
        )
    return sorted(entries, key=lambda entry: entry["path"])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


class _Handler(BaseHTTPRequestHandler):
    """Thin HTTP/1.0 shell (one request per connection: no keep-alive sockets outlive the server) around
    :meth:`FakeHub.handle`."""

    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.server.hub.handle(self.command, self.path, body, self.headers.get("Content-Type", ""))
        except HubError as error:
            response = _json({"error": error.message}, error.status)
            response.headers.update(error.headers)
        except Exception as error:  # a bug in the fake or a request it cannot parse: answer instead of hanging up
            response = _json({"error": f"fake hub: {type(error).__name__}: {error}"}, 500)
        self.server.hub.requests.append((self.command, self.path, response.status))
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log is ``FakeHub.requests``."""


def use_fake_hub(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, home: str | os.PathLike[str]) -> None:
    """Point huggingface_hub and transformers, in this process, at ``hub`` with a dummy token and an empty cache
    under ``home``; ``monkeypatch`` undoes it all. See the module docstring for why each patch is needed."""
    from huggingface_hub import constants, hf_api

    home = Path(home)
    for name, value in hub.env(home).items():
        monkeypatch.setenv(name, value)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    patched = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)  # raises if huggingface_hub renamed one: better than a silent miss
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    try:
        import transformers.utils.hub as transformers_hub
    except ImportError:
        return
    monkeypatch.setattr(transformers_hub, "_hf_api", None)
