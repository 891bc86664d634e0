"""A local stand-in for the Hugging Face Hub's HTTP API, enough for `huggingface_hub`'s own client
(`HfApi`, `HfFileSystem`, so `hf://` fsspec URLs) to create a dataset repo, commit files, list, stat and read
them. The Hub is unreachable from this machine; this lets the `hf://` paths of the sink, the blob store and the
exports run through the real client code instead of a mocked method.

    with HubStandIn() as hub:               # serves on 127.0.0.1:<free port>
        hub.use()                           # points huggingface_hub at it (HF endpoint, token), fresh fs cache
        ...                                 # hf://datasets/org/name/... now works
        hub.commits["org/name"]             # every commit, with the paths it added

What it is not: authentication, LFS/Xet uploads (every file is committed inline, "regular" mode), branches
other than main, pagination. Files live in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from typing import Any
from urllib.parse import unquote

from serve_helpers import free_port

__all__ = ["HubStandIn"]


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id, as the Hub reports it


class HubStandIn:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.repos: dict[str, dict[str, bytes]] = {}  # "org/name" (datasets) -> path -> bytes
        self.commits: dict[str, list[dict[str, Any]]] = {}
        self.visibility: dict[str, str] = {}  # "org/name" -> "private" | "public", as created
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = None
        self._thread: threading.Thread | None = None

    # -- the HTTP API ---------------------------------------------------------------------------------------
    def _app(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        def repo(request: Request) -> str:
            return f"{request.path_params['ns']}/{request.path_params['name']}"

        def head_sha(repo_id: str) -> str:
            commits = self.commits.get(repo_id) or []
            return commits[-1]["oid"] if commits else "0" * 40

        def entry(path: str, data: bytes) -> dict[str, Any]:
            return {"type": "file", "path": path, "size": len(data), "oid": _oid(data)}

        def folders_of(files: dict[str, bytes]) -> set[str]:
            return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}

        async def create_repo(request: Request):
            body = await request.json()
            repo_id = f"{body.get('organization') or 'user'}/{body['name']}" if "/" not in body["name"] else body["name"]
            with self._lock:
                exists = repo_id in self.repos
                self.repos.setdefault(repo_id, {})
                self.commits.setdefault(repo_id, [])
                if not exists:
                    private = body.get("private") or body.get("visibility") == "private"
                    self.visibility[repo_id] = "private" if private else "public"
            if exists:
                return JSONResponse({"error": "You already created this dataset repo"}, status_code=409)
            return JSONResponse({"url": f"{self.endpoint}/datasets/{repo_id}", "name": repo_id})

        async def repo_info(request: Request):
            repo_id = repo(request)
            if repo_id not in self.repos:
                return JSONResponse({"error": "Repository not found"}, status_code=404,
                                    headers={"X-Error-Code": "RepoNotFound"})
            files = self.repos[repo_id]
            return JSONResponse({"id": repo_id, "sha": head_sha(repo_id), "private": True,
                                 "siblings": [{"rfilename": p} for p in sorted(files)]})

        async def tree(request: Request):
            repo_id = repo(request)
            if repo_id not in self.repos:
                return JSONResponse({"error": "Repository not found"}, status_code=404,
                                    headers={"X-Error-Code": "RepoNotFound"})
            files = self.repos[repo_id]
            base = unquote(request.path_params.get("path", "")).strip("/")
            recursive = request.query_params.get("recursive") in ("True", "true", "1")
            prefix = f"{base}/" if base else ""
            if base and base not in folders_of(files):
                return JSONResponse({"error": f"{base} does not exist"}, status_code=404,
                                    headers={"X-Error-Code": "EntryNotFound"})
            out = []
            for folder in sorted(folders_of(files)):
                rest = folder[len(prefix):] if folder.startswith(prefix) else None
                if rest and (recursive or "/" not in rest):
                    out.append({"type": "directory", "path": folder, "oid": "0" * 40})
            for path in sorted(files):
                rest = path[len(prefix):] if path.startswith(prefix) else None
                if rest and (recursive or "/" not in rest):
                    out.append(entry(path, files[path]))
            return JSONResponse(out)

        async def paths_info(request: Request):
            repo_id = repo(request)
            form = await request.form()
            files = self.repos.get(repo_id, {})
            folders = folders_of(files)
            out = []
            for path in form.getlist("paths"):
                path = path.strip("/")
                if path in files:
                    out.append(entry(path, files[path]))
                elif path in folders:
                    out.append({"type": "directory", "path": path, "oid": "0" * 40})
            return JSONResponse(out)

        async def preupload(request: Request):
            body = await request.json()
            return JSONResponse({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                            "oid": None} for f in body["files"]]})

        async def commit(request: Request):
            repo_id = repo(request)
            if repo_id not in self.repos:
                return JSONResponse({"error": "Repository not found"}, status_code=404,
                                    headers={"X-Error-Code": "RepoNotFound"})
            added, deleted, message = {}, [], ""
            for line in (await request.body()).splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    message = item["value"].get("summary", "")
                elif item["key"] == "file":
                    value = item["value"]
                    if value.get("encoding") != "base64":
                        return JSONResponse({"error": "only base64 files"}, status_code=400)
                    added[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "deletedFile":
                    deleted.append(item["value"]["path"])
                else:
                    return JSONResponse({"error": f"unsupported operation {item['key']}"}, status_code=400)
            with self._lock:
                files = self.repos[repo_id]
                files.update(added)
                for path in deleted:
                    files.pop(path, None)
                oid = hashlib.sha1(f"{repo_id}{time.time_ns()}{sorted(added)}".encode()).hexdigest()
                self.commits[repo_id].append({"oid": oid, "message": message, "added": sorted(added),
                                              "deleted": deleted})
            return JSONResponse({"commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{oid}", "commitOid": oid,
                                 "pullRequestUrl": None})

        async def resolve(request: Request):
            repo_id = repo(request)
            path = unquote(request.path_params["path"])
            data = self.repos.get(repo_id, {}).get(path)
            if data is None:
                return Response(status_code=404, headers={"X-Error-Code": "EntryNotFound"})
            headers = {"ETag": f'"{_oid(data)}"', "X-Repo-Commit": head_sha(repo_id), "Accept-Ranges": "bytes"}
            ranged = request.headers.get("range", "")
            if ranged.startswith("bytes="):
                start_s, _, end_s = ranged[6:].partition("-")
                start = int(start_s or 0)
                end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
                part = data[start:end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                return Response(part if request.method == "GET" else b"", status_code=206, headers=headers)
            headers["Content-Length"] = str(len(data))
            return Response(data if request.method == "GET" else b"", headers=headers)

        async def validate_yaml(request: Request):  # a README's card metadata: accepted as it is
            return JSONResponse({"errors": [], "warnings": []})

        api = "/api/datasets/{ns}/{name}"
        routes = [
            Route("/api/repos/create", create_repo, methods=["POST"]),
            Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
            Route(api + "/revision/{rev}", repo_info),
            Route(api, repo_info),
            Route(api + "/tree/{rev}", tree),
            Route(api + "/tree/{rev}/{path:path}", tree),
            Route(api + "/paths-info/{rev}", paths_info, methods=["POST"]),
            Route(api + "/preupload/{rev}", preupload, methods=["POST"]),
            Route(api + "/commit/{rev}", commit, methods=["POST"]),
            Route("/datasets/{ns}/{name}/resolve/{rev}/{path:path}", resolve, methods=["GET", "HEAD"]),
        ]
        from starlette.middleware import Middleware
        from starlette.middleware.base import BaseHTTPMiddleware

        async def record(request, call_next):
            self.requests.append(f"{request.method} {request.url.path}")
            return await call_next(request)

        return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)])

    # -- life cycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> "HubStandIn":
        import uvicorn

        config = uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Hub stand-in did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def use(self, monkeypatch) -> None:
        """Point huggingface_hub (and fsspec's hf://) at this server for the rest of the test."""
        from huggingface_hub import HfFileSystem, constants

        monkeypatch.setattr(constants, "ENDPOINT", self.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            self.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_TOKEN", "hf_stand_in")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline (tests/conftest.py)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        HfFileSystem.clear_instance_cache()

    def create(self, repo_id: str) -> None:
        """A dataset repo, as `huggingface-cli repo create --repo-type dataset` would make it."""
        with self._lock:
            self.repos.setdefault(repo_id, {})
            self.commits.setdefault(repo_id, [])
