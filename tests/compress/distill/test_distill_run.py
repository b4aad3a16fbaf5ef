"""Distillation runs end to end: CNN teachers with logits, chains, resume after SIGKILL, 2-process DDP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import timm
import torch
from safetensors.torch import load_file, save_file

from compress.checkpoint import load_model, load_state
from compress.distill.qkv import extract_qkv
from compress.distill.run import run_distill
from tests.compress.conftest import ROOT, cli_env, kill_after_second_checkpoint, tinymim_cmd

STUDENT = ["--student", "vit_tiny", "--student-depth", "2", "--student-embed-dim", "32", "--student-num-heads", "2"]


def test_relation_run_writes_a_backbone_card(tiny_distill):
    run = run_distill(tiny_distill(epochs=2))
    model, card = load_model(run)
    assert card.task == "backbone" and card.distilled_block_heads == 4
    assert card.arch_kwargs["num_heads"] == 2  # the student's normal head count, restored when fine-tuning
    assert model.blocks[-1].attn.num_heads == 4 and model.blocks[0].attn.num_heads == 2
    report = card.training["distill"]
    assert report["teacher_block"] == 2 and report["teacher_blocks"] == 2
    assert "blocks.1.mlp.fc1.weight" in report["frozen"] and "head.weight" in report["frozen"]
    q, _, _ = extract_qkv(model, torch.zeros(1, 1, 16, 16))
    assert q.shape == (1, 4, 17, 8)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1] and all(r["train_loss_relation"] > 0 for r in lines)


def test_logits_from_a_resnet_teacher(tiny_distill, tmp_path):
    resnet = timm.create_model("resnet10t", pretrained=False, num_classes=10, in_chans=1)
    weights = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, str(weights))
    cfg = tiny_distill(
        teacher="resnet10t",
        teacher_weights=str(weights),
        teacher_mean=(0.286,),
        teacher_std=(0.353,),
        teacher_img_size=16,
        student_patch_size=4,
        method="logits_hard",
        alpha=0.5,
    )
    run = run_distill(cfg)
    _, card = load_model(run)
    assert card.task == "classifier" and card.distilled_block_heads is None
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert "val_top1" in record and record["train_loss_logits_hard"] > 0


def test_chain_each_student_teaches_the_next(tiny_distill, tmp_path):
    cfg = tiny_distill(
        output=str(tmp_path / "chain"),
        stages=(
            {"student": "vit_small", "student_embed_dim": 48, "student_num_heads": 3},
            {"student": "vit_tiny", "student_embed_dim": 32, "student_num_heads": 2},
        ),
    )
    final = run_distill(cfg)
    assert final == tmp_path / "chain" / "stage2_vit_tiny"
    _, first = load_model(tmp_path / "chain" / "stage1_vit_small")
    _, second = load_model(final)
    assert first.arch_kwargs["embed_dim"] == 48 and first.distilled_block_heads == 4
    # stage 2's teacher is stage 1's student, whose last block carries 4 heads (from its card)
    assert second.training["teacher"].endswith("stage1_vit_small") and second.distilled_block_heads == 4


def test_sigkill_then_resume_matches_uninterrupted(teacher_ckpt, tmp_path):
    args = [
        "distill",
        "--teacher",
        str(teacher_ckpt),
        *STUDENT,
        "--limit-train",
        "256",
        "--limit-val",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--checkpoint-every-steps",
        "5",
        "--no-progress",
        "--device",
        "cpu",
        "--amp",
        "off",
    ]
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    done = subprocess.run(
        tinymim_cmd(*args, "--output", str(ref)), cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    proc = subprocess.Popen(
        tinymim_cmd(*args, "--output", str(killed)),
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_after_second_checkpoint(proc, killed)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    state = load_state(killed / "last" if (killed / "last").exists() else killed / ".last.old")
    assert state["epoch"] < 2
    resumed = subprocess.run(
        tinymim_cmd("distill", "--resume", "--output", str(killed)),
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed" in resumed.stderr
    a, b = load_file(str(ref / "last" / "model.safetensors")), load_file(str(killed / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_process_ddp(teacher_ckpt, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tinymim_cli",
        "distill",
        "--teacher",
        str(teacher_ckpt),
        *STUDENT,
        "--limit-train",
        "128",
        "--limit-val",
        "32",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--no-progress",
        "--device",
        "cpu",
        "--output",
        str(run),
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "rank 1 of 2" in res.stderr
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [4, 8]  # 128 images / 2 processes / batch 16
    assert load_state(run / "last")["world_size"] == 2
    _, card = load_model(run)
    assert card.distilled_block_heads == 4


def test_identity_last_block_init_zeroes_the_untrained_output_layers(tiny_distill, tmp_path):
    run = run_distill(tiny_distill(last_block_init="identity", output=str(tmp_path / "identity")))
    model, card = load_model(run)
    last = model.blocks[-1]
    for p in (last.attn.proj.weight, last.attn.proj.bias, last.mlp.fc2.weight, last.mlp.fc2.bias):
        assert torch.count_nonzero(p) == 0
    assert card.training["distill"]["identity_init"] == [
        "blocks.1.attn.proj.weight",
        "blocks.1.attn.proj.bias",
        "blocks.1.mlp.fc2.weight",
        "blocks.1.mlp.fc2.bias",
    ]
    x = torch.randn(2, 17, 32)
    assert torch.equal(last(x), x)  # both residual branches add nothing: the block passes features through
    paper = load_model(run_distill(tiny_distill(output=str(tmp_path / "random"))))[0].blocks[-1]
    assert torch.count_nonzero(paper.mlp.fc2.weight) > 0 and torch.count_nonzero(paper.attn.proj.weight) > 0
