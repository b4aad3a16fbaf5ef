"""Step time of relation distillation: the real code path vs a bare bound vs a naive reference-style step.

Three ways to do one optimiser step of TinyMIM relation distillation on the same models and batch:

- ``tinymim``: the code ``tinymim distill --method relation`` runs (``compress.distill.setup.build_distillation``
  + ``Distillation.loss_fn`` inside ``compress.engine.train_one_epoch``: teacher stopped after the target
  block's q/k/v, student stopped after its last block's q/k/v, frozen unused parameters).
- ``bare``: the minimal loop, written inline here: teacher forward up to the target block under no_grad,
  student forward to its last block's q/k/v, the relation KL, backward, AdamW step. Nothing else.
  Target: tinymim / bare <= 1.10.
- ``naive``: how the reference implementation works: the whole teacher (all blocks, final norm) and the whole
  student run with attention probabilities materialised in every block; relations taken from the target
  block's q/k/v; student log-probabilities as log(softmax). Reported: naive / tinymim (the speed-up).

Teacher: 24 blocks, target block 18 (the paper's default for 24-block teachers). Sizes are small so it runs
in a few minutes on a CPU; ``--device cuda --amp bf16 --preset vit_b`` measures ViT-B -> ViT-T at 224 px.

    python benchmarks/distill_step.py            # CPU, ~2-3 minutes
    python benchmarks/distill_step.py --quick    # smaller, ~30 s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"

PRESETS: dict[str, dict[str, Any]] = {
    # teacher 24 x 128 (4 heads), student 4 x 64 (2 heads), 32 px / patch 4 -> 65 tokens
    "cpu": dict(img=32, patch=4, t_dim=128, t_heads=4, t_depth=24, s_dim=64, s_heads=2, s_depth=4, batch=32),
    "quick": dict(img=32, patch=8, t_dim=96, t_heads=4, t_depth=24, s_dim=48, s_heads=2, s_depth=2, batch=16),
    # ViT-B-width 24-block teacher -> ViT-T at 224 px (GPU)
    "vit_b": dict(img=224, patch=16, t_dim=768, t_heads=12, t_depth=24, s_dim=192, s_heads=3, s_depth=12, batch=128),
}


def _vit(dim: int, heads: int, depth: int, img: int, patch: int) -> torch.nn.Module:
    import timm

    return timm.create_model(
        "vit_base_patch16_224",
        pretrained=False,
        img_size=img,
        patch_size=patch,
        embed_dim=dim,
        num_heads=heads,
        depth=depth,
        num_classes=10,
        in_chans=3,
    )


def build(p: dict[str, Any], device: torch.device):
    from compress.distill.schedule import build_optimizer
    from compress.distill.setup import build_distillation

    torch.manual_seed(0)
    teacher = _vit(p["t_dim"], p["t_heads"], p["t_depth"], p["img"], p["patch"]).to(device)
    student = _vit(p["s_dim"], p["s_heads"], p["s_depth"], p["img"], p["patch"]).to(device)
    d = build_distillation(
        teacher,
        student,
        (("relation", 1.0),),
        teacher_is_classifier=True,
        num_classes=10,
        teacher_block=18,
        drop_path=0.1,
    )
    d.module.to(device)
    opt = build_optimizer(d.module, lr=1e-4)
    return d, opt


# ----------------------------------------------------------------------------------------------- bare bound


def bare_step_fn(d, opt, target: int) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """The minimal loop: same modules and math, no framework around it."""
    teacher, student = d.teacher.model, d.student

    def qkv(blk, h):
        b, n, c = h.shape
        m = blk.attn.num_heads
        return blk.attn.qkv(blk.norm1(h)).reshape(b, n, 3, m, c // m).permute(2, 0, 3, 1, 4).unbind(0)

    def tokens(model, x, upto):
        h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        for blk in model.blocks[:upto]:
            h = blk(h)
        return h

    def kl(t, s):
        return (
            F.kl_div(F.log_softmax(s.float(), -1), F.log_softmax(t.float(), -1), log_target=True, reduction="none")
            .sum(-1)
            .mean()
        )

    def rel(a, b):
        return (a.float() @ b.float().transpose(-2, -1)) * a.shape[-1] ** -0.5

    def step(xt: torch.Tensor, xs: torch.Tensor) -> None:
        with torch.no_grad():
            qt, kt, vt = qkv(teacher.blocks[target], tokens(teacher, xt, target))
        qs, ks, vs = qkv(student.blocks[-1], tokens(student, xs, len(student.blocks) - 1))
        loss = kl(rel(qt, kt), rel(qs, ks)) + kl(rel(vt, vt), rel(vs, vs))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# ----------------------------------------------------------------------------------------------- naive


def _naive_block(blk, h):
    """A timm block with attention probabilities materialised (the reference code's Attention)."""
    b, n, c = h.shape
    attn = blk.attn
    m = attn.num_heads
    q, k, v = attn.qkv(blk.norm1(h)).reshape(b, n, 3, m, c // m).permute(2, 0, 3, 1, 4).unbind(0)
    probs = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, M, N, N), kept for every block
    out = attn.proj((probs @ v).transpose(1, 2).reshape(b, n, c))
    h = h + blk.drop_path1(blk.ls1(out))
    h = h + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(h))))
    return h, (q, k, v), probs


def _naive_forward(model, x, keep: int):
    h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    kept, all_probs = None, []
    for i, blk in enumerate(model.blocks):
        h, qkv, probs = _naive_block(blk, h)
        all_probs.append(probs)
        if i == keep:
            kept = qkv
    model.forward_head(model.norm(h))
    return kept, all_probs


def naive_step_fn(d, opt, target: int) -> Callable[[torch.Tensor, torch.Tensor], None]:
    teacher, student = d.teacher.model, d.student

    def rel_log(a, b):  # the reference: log of a softmax for the student
        return torch.log(((a @ b.transpose(-2, -1)) * a.shape[-1] ** -0.5).softmax(-1))

    def rel(a, b):
        return ((a @ b.transpose(-2, -1)) * a.shape[-1] ** -0.5).softmax(-1)

    def step(xt: torch.Tensor, xs: torch.Tensor) -> None:
        with torch.no_grad():
            (qt, kt, vt), _ = _naive_forward(teacher, xt, target)
        (qs, ks, vs), _ = _naive_forward(student, xs, len(student.blocks) - 1)
        b, m, n, _ = qs.shape
        loss = (
            F.kl_div(rel_log(qs, ks), rel(qt, kt), reduction="sum")
            + F.kl_div(rel_log(vs, vs), rel(vt, vt), reduction="sum")
        ) / (b * m * n)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


# ----------------------------------------------------------------------------------------------- tinymim


def tinymim_step_fn(
    d, opt, device: torch.device, amp: torch.dtype | None
) -> Callable[[torch.Tensor, torch.Tensor, int], None]:
    from compress.engine import train_one_epoch

    labels = None

    def steps(xt: torch.Tensor, xs: torch.Tensor, n: int) -> None:
        nonlocal labels
        if labels is None:
            labels = torch.zeros(xs.shape[0], dtype=torch.long, device=device)
        # one "epoch" of n batches, as fit calls it (amp handled by the engine itself)
        train_one_epoch(
            d.module,
            [((xt, xs), labels)] * n,
            opt,
            d.loss_fn,
            device=device,
            epoch=0,
            lr_fn=lambda s: 1e-4,
            amp_dtype=amp,
            progress=False,
        )

    return steps


def _repeat(
    step: Callable[[torch.Tensor, torch.Tensor], None], amp: torch.dtype | None, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor, int], None]:
    def steps(xt: torch.Tensor, xs: torch.Tensor, n: int) -> None:
        for _ in range(n):
            with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
                step(xt, xs)

    return steps


# ----------------------------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    fns: dict[str, Callable],
    x: tuple[torch.Tensor, torch.Tensor],
    *,
    device: torch.device,
    steps: int,
    rounds: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Seconds per step for each fn (``fn(xt, xs, n)`` runs n steps), per round; rounds interleave the fns
    so machine noise hits all of them alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(*x, warmup)
    for _ in range(rounds):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn(*x, steps)
            _sync(device)
            times[name].append((time.perf_counter() - t0) / steps)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller models, fewer steps (~30 s on CPU)")
    ap.add_argument("--preset", choices=list(PRESETS), default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="steps per timing round")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=str(RESULTS / "distill_step"), help="results path without suffix")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = args.preset or ("quick" if args.quick else "cpu")
    p = dict(PRESETS[preset])
    if args.batch:
        p["batch"] = args.batch
    steps = args.steps or (3 if args.quick else 5)
    rounds = args.rounds or (3 if args.quick else 5)
    device = torch.device(args.device)
    amp = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]

    d, opt = build(p, device)
    target = d.teacher.target_block  # 0-based index of block 18
    x = (
        torch.randn(p["batch"], 3, p["img"], p["img"], device=device),
        torch.randn(p["batch"], 3, p["img"], p["img"], device=device),
    )
    fns = {
        "tinymim": tinymim_step_fn(d, opt, device, amp),
        "bare": _repeat(bare_step_fn(d, opt, target), amp, device),
        "naive": _repeat(naive_step_fn(d, opt, target), amp, device),
    }
    times = measure(fns, x, device=device, steps=steps, rounds=rounds, warmup=2)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "preset": preset,
        "sizes": p,
        "device": str(device),
        "amp": args.amp,
        "steps_per_round": steps,
        "rounds": rounds,
        "teacher_target_block": target + 1,
        "teacher_blocks": p["t_depth"],
        "threads": torch.get_num_threads(),
        "machine": _machine(device),
        "median_step_s": med,
        "all_step_s": times,
        "img_per_s": {k: p["batch"] / v for k, v in med.items()},
        "ratio_tinymim_over_bare": med["tinymim"] / med["bare"],
        "speedup_naive_over_tinymim": med["naive"] / med["tinymim"],
        "target_ratio": 1.10,
        "command": "python " + " ".join(["benchmarks/distill_step.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    _write(result, Path(args.out))
    print(
        json.dumps(
            {k: result[k] for k in ("median_step_s", "ratio_tinymim_over_bare", "speedup_naive_over_tinymim")}, indent=2
        )
    )
    return 0


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import os

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs (shared), torch {torch.__version__}"


def _write(r: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(r, indent=2))
    s, m = r["sizes"], r["median_step_s"]
    block, ips = r["teacher_target_block"], r["img_per_s"]
    md = (
        "## Relation distillation step time (benchmarks/distill_step.py)\n\n"
        f"Machine: {r['machine']}; device {r['device']}, amp {r['amp']}, {r['threads']} torch threads.\n"
        f"Command: `{r['command']}`\n\n"
        f"Teacher: ViT {s['t_depth']} blocks x {s['t_dim']} wide ({s['t_heads']} heads), "
        f"target block {block} of {r['teacher_blocks']};\n"
        f"student: ViT {s['s_depth']} blocks x {s['s_dim']} ({s['s_heads']} heads, last block re-split into "
        f"{s['t_heads']});\n"
        f"{s['img']} px, patch {s['patch']}, batch {s['batch']}. "
        f"Median of {r['rounds']} interleaved rounds of {r['steps_per_round']} steps.\n\n"
        "| step | median s/step | img/s | ratio |\n"
        "|---|---|---|---|\n"
        f"| bare bound (teacher to block {block} no-grad + student fwd/bwd + AdamW) | {m['bare']:.4f} | "
        f"{ips['bare']:.0f} | 1.00 |\n"
        f"| `tinymim distill --method relation` code path | {m['tinymim']:.4f} | {ips['tinymim']:.0f} | "
        f"**{r['ratio_tinymim_over_bare']:.3f}x bare** (target <= {r['target_ratio']:.2f}) |\n"
        f"| naive (whole teacher + student, attention materialised in every block) | {m['naive']:.4f} | "
        f"{ips['naive']:.0f} | tinymim is **{r['speedup_naive_over_tinymim']:.2f}x faster** |\n"
    )
    if r["device"] == "cpu":
        md += (
            "\nGPU figure (ViT-B-width 24-block teacher -> ViT-T, 224 px, bf16, batch 128): not measured in this run; "
            "on a GPU: `python benchmarks/distill_step.py --preset vit_b --device cuda --amp bf16`.\n"
        )
    out.with_suffix(".md").write_text(md)


if __name__ == "__main__":
    raise SystemExit(main())
