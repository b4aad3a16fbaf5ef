"""Fixtures: tiny real bundles (timm ViT -> torch.onnx.export -> bundle.json), apps and live servers.

The torch model is kept beside each bundle so tests can compare served predictions with PyTorch's.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.serve.helpers import ServerProc, start_server  # noqa: E402

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MAX_BATCH = 8


@dataclass
class TinyBundle:
    path: Path
    model: object  # torch.nn.Module (eval mode)
    preprocess: dict
    labels: list[str]


def build_tiny_bundle(root: Path, *, in_chans: int = 3, name: str = "tiny-vit", seed: int = 0) -> TinyBundle:
    import timm
    import torch

    from serve.bundle import Artifact, Bundle, TensorSpec, sha256_file
    from tinymim.card import Preprocess

    torch.manual_seed(seed)
    model = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        depth=2,
        num_heads=2,
        embed_dim=32,
        num_classes=len(LABELS),
        in_chans=in_chans,
    ).eval()
    root.mkdir(parents=True, exist_ok=True)
    onnx_path = root / "model.onnx"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, in_chans, 32, 32),),
            str(onnx_path),
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if in_chans == 3 else ((0.5,), (0.25,))
    pre = Preprocess((in_chans, 32, 32), mean, std, "bicubic", 1.0)
    bundle = Bundle(
        model_name=name,
        labels=list(LABELS),
        preprocess=pre,
        input=TensorSpec("input", "FP32", [-1, in_chans, 32, 32]),
        output=TensorSpec("logits", "FP32", [-1, len(LABELS)]),
        max_batch=MAX_BATCH,
        artifacts=[
            Artifact(
                name="onnx-fp32",
                file="model.onnx",
                format="onnx",
                precision="fp32",
                runtime="onnxruntime",
                sha256=sha256_file(onnx_path),
                gate={"passed": True},
                latency_ms={"1": 0.5},
            )
        ],
        source={"note": "tests/serve fixture, random init"},
    )
    bundle.save(root)
    return TinyBundle(root, model, pre, list(LABELS))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyBundle:
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle-rgb"))


@pytest.fixture(scope="session")
def tiny_gray(tmp_path_factory) -> TinyBundle:
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle-gray"), in_chans=1, name="tiny-gray", seed=1)


def make_settings(bundle: Path, **kw):
    from serve.settings import load_settings

    kw.setdefault("threads", 1)
    kw.setdefault("preprocess_workers", 2)
    return load_settings(bundle=bundle, **kw)


@pytest.fixture(scope="module")
def client(tiny):
    """In-process app with its lifespan run (model loaded and warm)."""
    from fastapi.testclient import TestClient

    from serve.app import create_app

    app = create_app(make_settings(tiny.path))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory) -> ServerProc:
    """A real `tinymim serve` on a free loopback port (module-scoped; stopped with SIGTERM)."""
    s = start_server(tiny.path, tmp_path_factory.mktemp("logs"), "--max-queue-delay-ms", "20")
    yield s
    s.stop()
