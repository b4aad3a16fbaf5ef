"""The LitServe row of benchmarks/serve_latency.py: the same ONNX model behind LitServe, written as its docs show.

``python benchmarks/_litserve_app.py BUNDLE PORT [--max-batch-size 32 --batch-timeout 0.005 ...]``

A ``LitAPI`` with ``setup`` (one ONNX Runtime session, the same options as tinymim's runtime: intra-op
threads, no spinning), ``decode_request`` (the uploaded file of a multipart form, as LitServe's docs send
files, through the same torch-free preprocessing as tinymim), ``batch``/``predict``/``unbatch`` (dynamic
batching on: ``max_batch_size`` and ``batch_timeout`` on the LitAPI) and ``encode_response`` (top-1 label).
Tuned as its docs advise for high request rates: ``fast_queue=True`` (ZeroMQ), one inference worker per
device, no per-request access log. LitServe is a dev/bench dependency only; nothing in the package imports it.
"""

from __future__ import annotations

import argparse
import os

import litserve as ls
import numpy as np

from serve.bundle import load_bundle
from serve.preprocess import Preprocessor


class ClassifierAPI(ls.LitAPI):
    def __init__(self, bundle: str, threads: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bundle_path, self.threads = bundle, threads

    def setup(self, device: str) -> None:
        import onnxruntime as ort

        bundle = load_bundle(self.bundle_path)
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.intra_op_num_threads = self.threads
        path = bundle.path_of(bundle.artifact("onnx-fp32"))
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.preprocess = Preprocessor.from_card(bundle.preprocess)
        self.labels = bundle.labels

    def decode_request(self, request):
        return self.preprocess(request["content"].file.read())  # (C, H, W) float32

    def batch(self, inputs):
        return np.stack(inputs)

    def predict(self, x):
        return self.session.run(None, {self.input_name: x})[0]

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output):
        i = int(np.argmax(output))
        return {"label": self.labels[i], "index": i, "score": float(output[i])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("port", type=int)
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    ap.add_argument("--workers-per-device", type=int, default=1)
    ap.add_argument("--threads", type=int, help="ONNX Runtime threads per worker (default: cores / workers)")
    args = ap.parse_args()
    threads = args.threads or max(1, len(os.sched_getaffinity(0)) // args.workers_per_device)
    api = ClassifierAPI(args.bundle, threads, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=args.workers_per_device, fast_queue=True)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
