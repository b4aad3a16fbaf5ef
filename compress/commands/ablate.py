"""``tinymim ablate``: does distillation pay on your data, and which method? (docs/METHOD.md section 5)

    tinymim ablate --teacher runs/teacher --data builtin:fashion-mnist --labelled 1000,5000 --seeds 0,1,2

The label-scarce protocol: every distilled student learns from the teacher on the whole pool of images
(``--data``, labels unused), ``--budget`` epochs, once per (method, seed); each is then fine-tuned on a small
labelled subset (``--labelled`` sizes, drawn per seed from ``--labelled-data``) for ``--finetune-epochs``.
The scratch twin trains the same student on the same labelled subset for the same epochs; scratch_compute
trains it as many image-steps as distillation + fine-tuning together. Every arm is run for every seed;
the report (OUTPUT/ablation.md, .json, .png) gives the mean and spread over seeds and the gain over the
scratch twin. Finished runs are reused and interrupted ones resumed when the command is run again.

CLI glue only: the config is ``compress.distill.config.AblateConfig``, the work
``compress.distill.ablation.run_ablation`` (imported when the command runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compress.distill.config import AblateConfig
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, AblateConfig)


def run(args: argparse.Namespace) -> int:
    from compress.distill.ablation import run_ablation

    cfg = config_from_args(AblateConfig, args)
    result = run_ablation(cfg)
    print(result.markdown())
    print(
        f"report: {Path(cfg.output) / 'ablation.md'}, {Path(cfg.output) / 'ablation.json'}, "
        f"{Path(cfg.output) / 'ablation.png'}"
    )
    return 0
