"""What both receiver routes (outgoing events, application installs) do with a request body: a
form of bounded size, or a refusal with one sentence."""

from __future__ import annotations

from starlette.requests import Request

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


class Refusal(Exception):
    """A request we answer with ``status`` and one sentence; never carries a secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form_body(request: Request, limit: int, *, wrong_type: str, what: str) -> bytes:
    """Read at most ``limit`` bytes of a form: Content-Length can be absent (chunked) or lie.
    ``wrong_type`` is the sentence for another media type; ``what`` names the body in the 413."""
    media_type = request.headers.get("content-type", FORM_MEDIA_TYPE).split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise Refusal(415, wrong_type)
    too_large = Refusal(413, f"The {what} body is larger than {limit} bytes.")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
