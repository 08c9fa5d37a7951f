"""Content negotiation: does the client's `Accept` header admit the media type a route produces?"""

from fastapi import Request
from fastapi.datastructures import DefaultPlaceholder

from api.errors import NotAcceptable


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media_range, *params = (piece.strip() for piece in part.split(";"))
        if "/" not in media_range:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media_range.lower(), quality))
    return ranges


def accepts(accept: str | None, media_type: str) -> bool:
    """True when `accept` (a raw header; None means anything) allows `media_type`."""
    if accept is None or not accept.strip():
        return True
    kind = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media_range, quality in _media_ranges(accept):
        specificity = {media_type: 3, f"{kind}/*": 2, "*/*": 1}.get(media_range)
        if specificity is not None and (best is None or specificity > best[0]):
            best = (specificity, quality)
    return best is not None and best[1] > 0


def negotiate(request: Request) -> None:
    """Router dependency: refuse with 406 an `Accept` the route's media type cannot satisfy."""
    route = request.scope.get("route")
    response_class = getattr(route, "response_class", None)
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    media_type = getattr(response_class, "media_type", None) or "application/json"
    if not accepts(request.headers.get("accept"), media_type):
        raise NotAcceptable(
            f"This resource is available as {media_type}; the Accept header does not allow it."
        )
