"""The bundle manifest (``bundle.json``): what export/ writes and serve/ loads.

A bundle is a folder::

    bundle.json            this manifest
    model.onnx             ONNX FP32 (always)
    model.int8.onnx        ONNX Runtime INT8 (QDQ), when built
    model.fp16.plan        TensorRT engines (+ .plan.json sidecar), when built
    report.json/.md/.png   the accuracy gate's report

Each artifact records its sha256; ``load_bundle`` checks every servable artifact's bytes against it,
so a file damaged or swapped after export is refused at load, never served.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serve.errors import BundleError
from tinymim.card import CardError, Preprocess

BUNDLE_VERSION = 1
MANIFEST = "bundle.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class TensorSpec:
    name: str
    datatype: str  # KServe v2 datatype, e.g. "FP32"
    shape: list[int]  # -1 for the dynamic batch dimension


@dataclass
class Artifact:
    """One deployable file of the bundle.

    name: unique key, e.g. "onnx-fp32", "onnx-int8", "tensorrt-fp16", "tensorrt-int8".
    format: "onnx" | "tensorrt"; precision: "fp32" | "fp16" | "int8";
    runtime: "onnxruntime" | "onnxruntime-cuda" | "tensorrt" (what serve.runtimes.open_runtime opens it with).
    gate: the accuracy gate's verdict {"passed": bool, "metrics": {...}, "thresholds": {...}}.
    servable: False when the gate failed or the artifact was not worth shipping; ``reason`` says why.
    latency_ms: measured at export time on the export machine, {batch_size: ms} as strings of ints.
    device: for TensorRT, the sidecar facts (trt version, GPU name, compute capability, profile).
    """

    name: str
    file: str
    format: str
    precision: str
    runtime: str
    sha256: str
    servable: bool = True
    reason: str | None = None
    gate: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    device: dict[str, Any] | None = None


@dataclass
class Bundle:
    model_name: str
    labels: list[str]
    preprocess: Preprocess  # the model card's preprocessing, written by export/ from the card
    input: TensorSpec
    output: TensorSpec
    max_batch: int
    artifacts: list[Artifact]
    source: dict[str, Any] = field(default_factory=dict)  # checkpoint path/sha256, card
    tools: dict[str, str] = field(default_factory=dict)
    bundle_version: int = BUNDLE_VERSION
    root: Path | None = field(default=None, compare=False)

    def artifact(self, name: str) -> Artifact:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise BundleError(f"bundle has no artifact {name!r}; it has: {', '.join(a.name for a in self.artifacts)}")

    def path_of(self, artifact: Artifact) -> Path:
        if self.root is None:
            raise BundleError("bundle was not loaded from disk; its artifact paths are unknown")
        return self.root / artifact.file

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("root")
        d["preprocess"] = self.preprocess.to_dict()
        return d

    def save(self, directory: str | Path) -> Path:
        """Write bundle.json atomically into ``directory``."""
        path = Path(directory) / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        tmp.replace(path)
        self.root = Path(directory)
        return path


def _parse(d: dict[str, Any], root: Path) -> Bundle:
    if d.get("bundle_version") != BUNDLE_VERSION:
        raise BundleError(f"unsupported bundle_version {d.get('bundle_version')!r}; re-export with this tinymim")
    try:
        return Bundle(
            model_name=d["model_name"],
            labels=list(d["labels"]),
            preprocess=Preprocess.from_dict(d["preprocess"]),
            input=TensorSpec(**d["input"]),
            output=TensorSpec(**d["output"]),
            max_batch=int(d["max_batch"]),
            artifacts=[Artifact(**a) for a in d["artifacts"]],
            source=dict(d.get("source", {})),
            tools=dict(d.get("tools", {})),
            root=root,
        )
    except (KeyError, TypeError) as err:
        raise BundleError(f"{root / MANIFEST} is malformed ({err!r}); re-export the bundle") from None
    except CardError as err:
        raise BundleError(f"{root / MANIFEST}: {err}; re-export the bundle") from None


def load_bundle(path: str | Path, *, verify: bool = True) -> Bundle:
    """Load ``bundle.json`` from a bundle folder; with ``verify``, check every servable artifact's sha256."""
    root = Path(path)
    manifest = root / MANIFEST if root.is_dir() else root
    root = manifest.parent
    if not manifest.is_file():
        raise BundleError(f"no bundle at {path}: expected a folder holding {MANIFEST} (made by 'tinymim export')")
    try:
        d = json.loads(manifest.read_text())
    except json.JSONDecodeError as err:
        raise BundleError(f"{manifest} is not valid JSON: {err}") from None
    bundle = _parse(d, root)
    if verify:
        for a in bundle.artifacts:
            if a.servable:
                verify_artifact(bundle, a)
    return bundle


def verify_artifact(bundle: Bundle, artifact: Artifact) -> None:
    """Raise BundleError unless the artifact file exists and its sha256 matches the manifest."""
    p = bundle.path_of(artifact)
    if not p.is_file():
        raise BundleError(f"artifact {artifact.name}: file {p} is missing; re-export the bundle")
    actual = sha256_file(p)
    if actual != artifact.sha256:
        raise BundleError(
            f"artifact {artifact.name}: {p} has sha256 {actual[:12]}..., the manifest records "
            f"{artifact.sha256[:12]}...; the file was changed after export. Re-export the bundle."
        )
