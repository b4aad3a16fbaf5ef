"""Errors raised by serve/: bundles, runtimes, preprocessing and the service."""

from tinymim.errors import TinymimError


class ServeError(TinymimError):
    """Base class for serve/ errors."""


class BundleError(ServeError):
    """A bundle is missing, malformed, or an artifact's bytes do not match its recorded hash."""


class RuntimeUnavailable(ServeError):
    """The artifact cannot run here (no GPU, missing package, engine built for another device)."""


class ImageError(ServeError):
    """An input image is corrupt, unsupported or too large."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RequestError(ServeError):
    """A request the service refuses; ``status`` is the HTTP status it answers with.

    400 malformed input, 401 missing/wrong API key, 404 unknown model/version/output, 413 too large,
    415 unsupported media type, 503 overloaded / not ready / timed out (with Retry-After).
    """

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Overloaded(RequestError):
    """The batch queue is full, the request timed out in it, or the service is shutting down (503)."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, status=503, headers={"Retry-After": str(retry_after_s)})
