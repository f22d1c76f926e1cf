"""The same `banana train` command under torchrun: 2 CPU processes (gloo), a few steps."""

from __future__ import annotations

import json
import sys

from cli_helpers import run_cli

from banana_sdk.checkpoint import load_checkpoint
from banana_sdk.training.common import LoopConfig, Precision
from banana_sdk.training.stages import train_stage

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]  # runs cli.py
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # per rank (torchrun's own default, set here so it does not warn)


def test_teacher_trains_data_parallel_on_two_processes(tmp_path):
    vae = tmp_path / "vae"
    train_stage("vae", LoopConfig(steps=2, batch_size=2, lr=1e-3, precision=Precision.FP32), vae, preset="tiny",
                crop=32, threads=1)
    result = run_cli("train", "teacher", "--init", vae, "--out", tmp_path / "teacher", "--steps", "3",
                     "--batch", "4", "--latents", "16", "--cache", tmp_path / "cache", "--log-every", "1",
                     "--precision", "fp32", launcher=TORCHRUN, env=ONE_THREAD)
    assert result.code == 0, result.err[-2000:]
    summaries = [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["steps"] == 3  # rank 0 reports, once
    _, extra = load_checkpoint(tmp_path / "teacher")
    assert extra["recipe"][-1]["world_size"] == 2 and extra["step"] == 3
    assert len(list((tmp_path / "cache").glob("latents-*.pt"))) == 2  # each rank encoded its own shard
    log = [json.loads(line) for line in (tmp_path / "teacher" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] == r["loss"] for r in log)
    bad = run_cli("train", "teacher", "--init", vae, "--out", tmp_path / "t2", "--batch", "3",
                  "--latents", "16", "--cache", tmp_path / "cache", launcher=TORCHRUN, env=ONE_THREAD)
    assert bad.code != 0 and "divisible by the 2 processes" in bad.err
