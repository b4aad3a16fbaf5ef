"""Where `tinymim serve` spends its time under wrk: a py-spy profile of the server, grouped by what the code does.

    pip install py-spy && apt-get install -y wrk
    python benchmarks/serve_profile.py                                   # this checkout, ~1 minute
    python benchmarks/serve_profile.py --also-src before=/path/to/checkout   # the same for another checkout

The 28 px quickstart-shaped student of benchmarks/serve_latency.py is served with the defaults; wrk posts the
same Fashion-MNIST PNG with 16 connections (``-t2``), then with 1; meanwhile ``py-spy record --threads -r 250``
samples the server for 10 s. Each sample of the event-loop thread is put in the first category that matches
its stack from the innermost frame out (runtime call, decode, preprocess, encode, batcher hand-off, timing and
metrics, the response write, HTTP parsing, framework layers, the event loop itself). py-spy counts a thread
whenever it is not sleeping in the kernel, so waiting for the GIL counts to the frame that waits: shares of
the thread's busy samples, not CPU time (benchmarks/serve_latency.py has CPU per request).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _serving import WRK_SCRIPT, Neighbours, build_bundle, wrk_available  # noqa: E402
from serve_latency import MODELS, images, machine  # noqa: E402

from serve.process import ServerProcess  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
CATEGORIES = [  # first match from the innermost frame outwards
    ("ONNX Runtime call", r"Session\.run|InferenceSession\.run"),
    ("decode (Pillow)", r"Preprocessor\.(open|load|decode)\b|PIL/Image\.py|ImageFile|PngImagePlugin|JpegImagePlugin"),
    ("preprocess (resize, crop, normalise)", r"Preprocessor\.(transform|__call__|_resize|_center_crop|batch)"),
    ("encode (top-k, JSON, v2 outputs)", r"_predictions|_softmax|_outputs|encode_infer_response|json/"),
    (
        "batcher hand-off (futures, queue, executor)",
        r"serve/batcher\.py|asyncio/futures|concurrent/futures|wait_for|gather",
    ),
    ("timing and metrics", r"serve/timing\.py|prometheus_client|serve/stats\.py|ServiceMetrics|answered"),
    ("response write (uvicorn send)", r"RequestResponseCycle\.send"),
    ("HTTP parsing (uvicorn, httptools)", r"httptools_impl"),
    (
        "framework layers (FastAPI, Starlette, middleware)",
        r"starlette/|fastapi/|proxy_headers|serve/middleware|serve/routers|serve/deps",
    ),
    ("event loop (asyncio, uvloop)", r"asyncio/|uvloop"),
]


def py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(path).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return path


def categorize(raw: Path) -> tuple[int, dict[str, float]]:
    """Busy samples of the event-loop thread and the share of each category."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        frames = stack.split(";")
        if "MainThread" not in frames[0]:
            continue
        cat = next(
            (c for f in reversed(frames[1:]) for c, rx in CATEGORIES if re.search(rx, f)),
            "other",
        )
        counts[cat] += int(n)
    total = sum(counts.values())
    return total, {c: counts[c] / total for c, _ in [*CATEGORIES, ("other", "")] if counts[c]}


def profile(name: str, src: str | None, bundle: Path, image: Path, tmp: Path) -> dict:
    env = {"PYTHONPATH": src} if src else None
    srv = ServerProcess(bundle, log_path=tmp / f"{name}.log", cwd=REPO, env=env).wait_ready(300)
    out = {}
    try:
        url = srv.url + "/v1/classify?top_k=1"
        wenv = {**os.environ, "WRK_BODY": str(image), "WRK_CTYPE": "image/png"}
        wrk = ["wrk", "-s", str(WRK_SCRIPT), "--latency"]
        subprocess.run([*wrk, "-t2", "-c16", "-d3s", url], env=wenv, capture_output=True, check=True)  # warm-up
        for conns, threads in ((16, 2), (1, 1)):
            load = subprocess.Popen(
                [*wrk, f"-t{threads}", f"-c{conns}", "-d13s", url], env=wenv, stdout=subprocess.PIPE, text=True
            )
            time.sleep(1)
            raw = tmp / f"{name}-c{conns}.txt"
            subprocess.run(
                [
                    py_spy(),
                    "record",
                    "-p",
                    str(srv.proc.pid),
                    "-d",
                    "10",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--threads",
                ],
                capture_output=True,
                check=True,
            )
            stdout, _ = load.communicate()
            requests = int(re.search(r"(\d+) requests in", stdout).group(1))
            samples, shares = categorize(raw)
            out[f"c{conns}"] = {"samples": samples, "requests_per_s": requests / 13, "shares": shares}
    finally:
        srv.stop()
    return out


def render(results: dict[str, dict], command: str, beside: str) -> str:
    lines = [
        "## Where the serving time goes: a profile (benchmarks/serve_profile.py)",
        "",
        f"Machine: {machine()}.  ",
        f"Beside it: {beside}.  ",
        f"Command: `{command}` (`pip install py-spy`, `apt-get install -y wrk`). py-spy samples `tinymim serve` "
        "(28 px student, defaults) for 10 s under wrk; the table gives the share of the event-loop thread's busy "
        "samples in each category (innermost matching frame; waiting for the GIL counts to the frame that waits).",
        "",
    ]
    cats = [c for c, _ in CATEGORIES] + ["other"]
    cols = [(name, c) for name in results for c in ("c16", "c1")]
    lines.append("| event-loop thread | " + " | ".join(f"{n} c={c[1:]}" for n, c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for cat in cats:
        cells = [results[n][c]["shares"].get(cat) for n, c in cols]
        if any(cells):
            lines.append(f"| {cat} | " + " | ".join("-" if v is None else f"{100 * v:.0f}%" for v in cells) + " |")
    lines.append(
        "| busy samples (requests/s) | "
        + " | ".join(f"{results[n][c]['samples']} ({results[n][c]['requests_per_s']:.0f})" for n, c in cols)
        + " |"
    )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--also-src", action="append", default=[], metavar="NAME=PATH", help="another checkout too")
    ap.add_argument("--note", default="", help="text appended to the section (what the checkouts are)")
    ap.add_argument("--quick", action="store_true", help="the same run (it takes ~1 minute); for run_all.py --quick")
    args = ap.parse_args()
    wrk_available()
    py_spy()
    results = {}
    others = Neighbours()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bundle, _ = build_bundle(tmp / "student28", name="student28", spec=MODELS["student28"].spec())
        image = images(tmp)["student28"]
        for spec in args.also_src:
            name, _, path = spec.partition("=")
            results[name] = profile(name, path, bundle, image, tmp)
        results["this checkout"] = profile("this", None, bundle, image, tmp)
    others.sample()
    text = render(results, "python " + " ".join(["benchmarks/serve_profile.py", *sys.argv[1:]]), others.describe())
    if args.note:
        text += "\n" + args.note.strip() + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_profile.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
