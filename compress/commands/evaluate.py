"""``tinymim eval CHECKPOINT --data ...``: top-1/top-5, per-class accuracy, confusion matrix (PNG + JSON).

CLI glue only: the config is ``compress.eval_config.EvalConfig``, the work
``compress.evaluation.evaluate_checkpoint`` (imported when the command runs).
"""

from __future__ import annotations

import argparse
import json

from compress.eval_config import EvalConfig
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EvalConfig, positional=("checkpoint",))


def run(args: argparse.Namespace) -> int:
    from compress.evaluation import evaluate_checkpoint

    cfg = config_from_args(EvalConfig, args)
    result = evaluate_checkpoint(cfg)
    print(json.dumps({k: v for k, v in result.items() if k not in ("confusion_matrix",)}, indent=2))
    return 0
