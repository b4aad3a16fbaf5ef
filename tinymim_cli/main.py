"""The ``tinymim`` command: a dispatcher that imports each subcommand only when it runs.

Every subcommand lives in its own package and exposes two functions::

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int

The modules named below must not import torch (or other heavy libraries) at module level, so that
``tinymim --help`` and ``tinymim serve --help`` stay fast and work with only the serve extra installed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from tinymim import __version__
from tinymim.errors import TinymimError

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "quickstart": (
        "tinymim_cli.quickstart",
        "built-in data -> teacher -> distilled student -> export -> serve -> bench",
    ),
    "train": ("compress.commands.train", "supervised training or fine-tuning of a timm ViT"),
    "distill": ("compress.commands.distill", "TinyMIM relation distillation (and baselines) from a teacher"),
    "ablate": ("compress.commands.ablate", "compare distillation methods at an equal budget on your data"),
    "eval": ("compress.commands.evaluate", "evaluate a checkpoint: top-1/top-5, per-class accuracy, confusion matrix"),
    "export": ("export.command", "export a checkpoint to ONNX / INT8 / TensorRT behind an accuracy gate"),
    "serve": ("serve.command", "serve an exported bundle over HTTP (v1 + KServe v2 protocol)"),
    "bench": (
        "serve.bench.command",
        "latency of services and of a bundle's artifacts alone, compared in one table (small-device emulation)",
    ),
}

log = logging.getLogger("tinymim")


def _top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="tinymim",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Distil, export and serve small vision transformers.",
        epilog=f"commands:\n{lines}\n\nRun 'tinymim COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"tinymim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    return parser


OUR_LOGGERS = ("tinymim", "tinymim_cli", "compress", "export", "serve")


def _configure_logging(verbose: bool) -> None:
    """Our packages log at INFO (DEBUG with -v); third-party libraries only at WARNING and above, since
    some (ONNX Runtime's quantizer and optimizer) log every node at INFO on the root logger."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    # Split at the first non-option word: everything after it belongs to the subcommand.
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    ns = top.parse_args(argv[: split + 1])
    module_name, text = COMMANDS[ns.command]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"tinymim {ns.command}", description=text)
    module.add_arguments(sub)
    args = sub.parse_args(argv[split + 1 :])
    _configure_logging(ns.verbose)
    try:
        return int(module.run(args) or 0)
    except TinymimError as err:
        log.error("%s", err)
        return err.exit_code
    except KeyboardInterrupt:
        log.error("interrupted; finished checkpoints and artifacts are kept")
        return 130


if __name__ == "__main__":
    sys.exit(main())
