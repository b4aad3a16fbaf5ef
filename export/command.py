"""``tinymim export CHECKPOINT_OR_RUN --out BUNDLE``: checkpoint -> gated bundle (ONNX, INT8, TensorRT).

CLI glue only: the config is :class:`export.config.ExportConfig`, the work is :func:`export.pipeline.export_bundle`
(imported when the command runs, so ``tinymim export --help`` stays fast).
"""

from __future__ import annotations

import argparse

from export.config import ExportConfig
from tinymim.configio import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, ExportConfig, positional=("checkpoint",))


def run(args: argparse.Namespace) -> int:
    from export.pipeline import export_bundle

    cfg = config_from_args(ExportConfig, args)
    result = export_bundle(cfg)
    for a in result.report["artifacts"]:
        w = a.get("gate", {}).get("worst", {})
        state = "servable" if a["servable"] else f"NOT servable: {a.get('reason')}"
        agree = f"agreement {w['agreement'] * 100:.2f}%" if "agreement" in w else ""
        print(f"{a['name']:<18} {a['precision']:<5} {agree:<20} {state}")
    print(f"bundle: {result.bundle}  (report: {result.bundle / 'report.md'})")
    return result.exit_code
