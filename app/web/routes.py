"""The app's own image routes, beside Gradio's: pictures by name, never by a path on the server.

    GET /covers/<ab>/<sha256>.jpg|png     a generated cover by blob key (`cover_url(key)`)
    GET /item-image?id=<item id>          an item's own picture, from a bring-your-own catalogue (`item_image_url`)

Cards, label pairs, the detail view and the API all point at these, so no page or answer shows where the
data dir or the dataset folder lives. Both answer 404 for anything they do not serve: a cover key that is not
in the blob store (or on trial from Create), an item without a picture. Only image files are ever served.
`launch_kwargs` passes `routes(svc)` to `launch(app_kwargs={"routes": [...]})`.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.errors import AppInputError

__all__ = ["cover_url", "item_image_url", "cover_route", "item_image_route", "routes"]

_COVER_NAME = re.compile(r"^([0-9a-f]{2})[0-9a-f]{62}\.(jpg|png)$")
_MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
ITEM_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


def cover_url(key: str | None) -> str | None:
    """The URL (relative to the app's root) at which `cover_route` serves the cover with blob key `key`."""
    return key  # the route mirrors the key space: covers/ab/<sha256>.jpg


def item_image_url(item_id: str) -> str:
    """The URL (relative to the app's root) at which `item_image_route` serves the item's own picture."""
    return "item-image?id=" + quote(str(item_id), safe="")


def cover_route(assets: Any):
    """GET and HEAD /covers/<ab>/<sha256>.jpg|png: the cover from the blob store (fetched into this machine's
    cache on a miss) or from the Create variants on trial; 404 for anything else. Keys name contents, so an
    answer may be cached."""
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    def serve(request):
        shard, name = request.path_params["shard"], request.path_params["name"]
        found = _COVER_NAME.match(name)
        path = assets.cover_file(f"covers/{shard}/{name}") if found and found.group(1) == shard else None
        if path is None:
            return Response(status_code=404)
        return FileResponse(Path(path), media_type=_MEDIA_TYPES[found.group(2)], headers=_HEADERS)

    return Route("/covers/{shard}/{name}", serve, methods=["GET", "HEAD"])


def item_image_route(catalog: Any):
    """GET and HEAD /item-image?id=<item id>: the item's own picture (a path the catalogue checked to be inside
    the dataset folder when it loaded); 404 for an unknown item, an item without one, or a file that is not an
    image."""
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    def serve(request):
        item_id = request.query_params.get("id", "")
        try:
            path = catalog.item_image(item_id) if item_id else None
        except AppInputError:  # an unknown or malformed id: not served
            path = None
        if not path or Path(path).suffix.lower() not in ITEM_IMAGE_SUFFIXES or not Path(path).is_file():
            return Response(status_code=404)
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return FileResponse(Path(path), media_type=media, headers=_HEADERS)

    return Route("/item-image", serve, methods=["GET", "HEAD"])


def routes(svc: Any) -> list:
    """Every route of this module, for `launch(app_kwargs={"routes": ...})`."""
    return [cover_route(svc.assets), item_image_route(svc.catalog)]


def public_root(svc: Any, request: Any) -> str | None:
    """The app's root URL for this request, without a trailing slash: VITRINE_PUBLIC_URL when set, else what
    Gradio builds from the request (the address it came to); None without a request."""
    if svc.settings.public_url:
        return svc.settings.public_url
    raw = getattr(request, "request", None) if request is not None else None
    if raw is None:
        return None
    from gradio import route_utils

    try:
        route = route_utils.get_api_call_path(raw)
    except ValueError:  # not an event's request
        return None
    return route_utils.get_root_url(request=raw, route_path=route, root_path=raw.scope.get("root_path") or None)
