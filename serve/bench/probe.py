"""One artifact timed alone in a process of its own: ``python -m serve.bench.probe BUNDLE ARTIFACT ...``.

Started by the offline benchmark (serve/bench/offline.py), once per artifact and round, so that each artifact's
cold start, peak memory and CPU set are its own. It pins itself to ``--cpus`` before importing any runtime,
opens the artifact, answers one batch-1 request (the cold start ends there: its wall-clock time is reported,
the parent knows when it spawned the process), times each batch size for its share of ``--seconds``, and prints
one JSON object on stdout. A runtime that cannot run here (e.g. TensorRT without a GPU) prints
``{"error": ...}`` and exits 3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("artifact", help="artifact name, or auto")
    ap.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: the usable CPUs)")
    ap.add_argument("--cpus", type=int, help="pin to the first N usable CPUs before anything else")
    ap.add_argument("--batch-sizes", type=_ints, default=[1, 8])
    ap.add_argument("--seconds", type=float, default=2.0, help="timing budget, split over the batch sizes")
    ap.add_argument("--iters", type=int, help="iterations per batch size (instead of --seconds)")
    args = ap.parse_args(argv)

    from serve.procinfo import peak_rss_bytes, pin_to_cpus

    cpus = pin_to_cpus(args.cpus) if args.cpus else None
    import numpy as np

    from serve.bundle import load_bundle
    from serve.errors import ServeError
    from serve.select import select_runtime

    bundle = load_bundle(args.bundle, verify=True)
    try:
        sel = select_runtime(bundle, args.artifact, device="auto", threads=args.threads)
    except ServeError as err:
        print(json.dumps({"error": str(err)}))
        return 3
    shape = tuple(bundle.preprocess.input_size)
    rng = np.random.default_rng(0)
    sel.runtime.infer(rng.standard_normal((1, *shape)).astype(np.float32))
    first_answer = time.time()
    sizes = [b for b in args.batch_sizes if b <= sel.runtime.max_batch]
    per_size = args.seconds / max(1, len(sizes))
    latencies: dict[str, list[float]] = {}
    try:
        for b in sizes:
            x = rng.standard_normal((b, *shape)).astype(np.float32)
            for _ in range(2):  # warm-up
                sel.runtime.infer(x)
            lat: list[float] = []
            t_end = time.perf_counter() + per_size
            while len(lat) < 3 or (len(lat) < args.iters if args.iters else time.perf_counter() < t_end):
                t0 = time.perf_counter()
                sel.runtime.infer(x)
                lat.append(time.perf_counter() - t0)
            latencies[str(b)] = lat
    finally:
        sel.runtime.close()
    out = {
        "artifact": sel.artifact.name,
        "runtime": sel.runtime.name,
        "device": sel.device,
        "threads": args.threads or len(os.sched_getaffinity(0)),
        "cpus": cpus or sorted(os.sched_getaffinity(0)),
        "first_answer_unix": first_answer,
        "peak_rss_bytes": peak_rss_bytes(),
        "latencies_s": latencies,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
