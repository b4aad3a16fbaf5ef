"""tinymim: distil, export and serve small vision transformers."""

__version__ = "0.1.0"
