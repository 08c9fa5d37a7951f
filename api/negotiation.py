"""Content negotiation: which media type a route offers does the `Accept` header prefer?"""

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
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media_range.lower(), quality))
    return ranges


def quality(accept: str | None, media_type: str) -> float:
    """How much `accept` (a raw header; None means anything) wants `media_type`, 0 to 1."""
    if accept is None or not accept.strip():
        return 1.0
    media_type = media_type.split(";")[0].strip().lower()
    kind = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media_range, q in _media_ranges(accept):
        specificity = {media_type: 3, f"{kind}/*": 2, "*/*": 1}.get(media_range)
        if specificity is not None and (best is None or specificity > best[0]):
            best = (specificity, q)
    return best[1] if best else 0.0


def choose(request: Request, offered: list[str]) -> str:
    """The offered media type the client prefers (the first on ties); 406 when it takes none."""
    accept = request.headers.get("accept")
    scored = [(quality(accept, media_type), -index) for index, media_type in enumerate(offered)]
    best_quality, best_index = max(scored)
    if best_quality <= 0:
        raise NotAcceptable(
            f"This resource is available as {', '.join(offered)}; "
            "the Accept header allows none of them."
        )
    return offered[-best_index]


def require(request: Request, media_type: str) -> None:
    """406 unless the client accepts `media_type`."""
    choose(request, [media_type])


def _offered(route: object) -> list[str]:
    responses = getattr(route, "responses", None) or {}
    content = (responses.get(200) or responses.get("200") or {}).get("content")
    if content:
        return list(content)
    response_class = getattr(route, "response_class", None)
    if isinstance(response_class, DefaultPlaceholder):
        response_class = response_class.value
    return [getattr(response_class, "media_type", None) or "application/json"]


async def negotiate(request: Request) -> None:
    """Router dependency: 406 unless the client accepts one of the types the route offers.

    Routes that offer several types pick one in the handler with `choose`. It is `async` only
    so that FastAPI runs it on the event loop rather than handing it to a thread.
    """
    choose(request, _offered(request.scope.get("route")))
