"""``tinymim eval CHECKPOINT --data ...``: top-1/top-5, per-class accuracy, confusion matrix (PNG + JSON).

CLI glue only: the config and the work are in :mod:`compress.evaluation`.
"""

from __future__ import annotations

import argparse
import json

from compress.evaluation import EvalConfig, evaluate_checkpoint
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvalConfig, positional=("checkpoint",))


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvalConfig, args)
    result = evaluate_checkpoint(cfg)
    print(json.dumps({k: v for k, v in result.items() if k not in ("confusion_matrix",)}, indent=2))
    return 0
