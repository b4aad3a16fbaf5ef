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
