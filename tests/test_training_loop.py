"""The shared Lightning training loop on a tiny network (tests/training_fixtures.py): seeds, resume,
data order, loss curve, and what importing detectors costs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training_fixtures as fx
from anomalygen.detectors.training.items import EpochSampler
from anomalygen.errors import AnomalygenError

FIXTURES = Path(fx.__file__)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _order(epoch: int, seed: int = 0) -> list[list[int]]:
    """The item indices of each batch of `epoch`, as EpochSampler draws them."""
    keys = [i for _, i in EpochSampler(fx.N_ITEMS, seed, epoch)]
    return [keys[s:s + fx.BATCH] for s in range(0, len(keys), fx.BATCH)]


def test_same_seed_gives_identical_weights_with_any_number_of_loader_workers(tmp_path):
    a, res = fx.fit_tiny(tmp_path / "a", seed=3)
    b, _ = fx.fit_tiny(tmp_path / "b", seed=3, workers=2)
    c, _ = fx.fit_tiny(tmp_path / "c", seed=4)
    assert res.epochs == 3 and res.steps == 3 * fx.N_ITEMS // fx.BATCH and res.stopped is None
    assert _same_weights(a, b)  # draws depend on (seed, epoch, index), not on which process made them
    assert not _same_weights(a, c)
    # the checkpoint holds the optimizer and schedule the TrainConfig asked for
    saved = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["optimizer_states"][0]["param_groups"][0]["weight_decay"] == 0.01  # adamw
    assert saved["lr_schedulers"][0]["_last_lr"] == [0.01 * 0.5]  # milestone 0.5 x 3 epochs -> epoch 2, gamma 0.5


def test_a_fit_stopped_mid_epoch_resumes_from_its_last_complete_epoch(tmp_path):
    """A NaN loss at step 8 (epoch 2 of 6-step epochs) ends a fit whose curve already holds steps
    7 and its checkpoint epoch 1; resuming with a sound loss drops those rows and ends where an
    uninterrupted fit does."""
    with pytest.raises(AnomalygenError, match="epoch 2, step 8"):
        fx.fit_tiny(tmp_path / "stopped", loss=fx.NanFromStep(8))
    assert len((tmp_path / "stopped" / "loss.csv").read_text().splitlines()) == 1 + 7
    resumed, res = fx.fit_tiny(tmp_path / "stopped", resume=True)
    assert res.resumed_from == 1
    full, _ = fx.fit_tiny(tmp_path / "full")
    assert _same_weights(resumed, full)
    assert (tmp_path / "stopped" / "loss.csv").read_text() == (tmp_path / "full" / "loss.csv").read_text()


@pytest.mark.parametrize("workers", [2, 0])
def test_killed_during_epoch_2_and_resumed_ends_with_the_uninterrupted_weights(tmp_path, workers):
    """A fit in a subprocess is SIGKILLed as soon as its epoch-1 checkpoint appears (epoch 2 is
    running), then resumed here: the final weights, the loss curve and the data order of every
    resumed epoch equal an uninterrupted fit's. With 2 workers the loader prefetches before
    Lightning sets the sampler's epoch; with none, a new loader iterator starts every epoch."""
    killed = tmp_path / "killed"
    ckpt = killed / "checkpoints" / "last.ckpt"
    # 24 items x 0.03 s (over 2 workers or in-process): an epoch lasts 0.4-0.7 s, so the kill lands inside epoch 2
    fx.kill_when_written([sys.executable, str(FIXTURES), str(killed), "3", str(workers), "0.03"], ckpt)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 1, "killed too late"

    fx.SEEN.clear()
    resumed, res = fx.fit_tiny(killed, workers=workers, resume=True)
    assert (res.resumed_from, res.epochs, res.steps) == (1, 3, 18)
    # the first batch of the resumed epoch 2 is drawn for epoch 2, although the workers prefetch
    # before Lightning calls set_epoch on the sampler
    assert fx.SEEN == _order(1) + _order(2)

    fx.SEEN.clear()
    full, _ = fx.fit_tiny(tmp_path / "full", workers=workers)
    assert fx.SEEN == _order(0) + _order(1) + _order(2)
    assert _same_weights(resumed, full)
    assert (killed / "loss.csv").read_text() == (tmp_path / "full" / "loss.csv").read_text()


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    fx.fit_tiny(tmp_path, epochs=1)
    with pytest.raises(AnomalygenError, match="other train than this one"):
        fx.fit_tiny(tmp_path, epochs=2, resume=True)
    _, res = fx.fit_tiny(tmp_path, epochs=2)  # without resume: starts over
    assert res.resumed_from == 0 and res.epochs == 2


def test_loss_csv_has_a_row_per_step_and_the_png_is_an_image(tmp_path):
    from PIL import Image

    _, res = fx.fit_tiny(tmp_path, epochs=4)
    lines = (tmp_path / "loss.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,loss,l1"
    rows = [line.split(",") for line in lines[1:]]
    per_epoch = fx.N_ITEMS // fx.BATCH
    assert [int(r[1]) for r in rows] == list(range(1, res.steps + 1)) and len(rows) == 4 * per_epoch
    assert [int(r[0]) for r in rows] == [e for e in range(1, 5) for _ in range(per_epoch)]
    assert all(float(v) > 0 for r in rows for v in r[2:])
    png = tmp_path / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        assert im.size[0] > 100 and im.size[1] > 100


def test_importing_detectors_and_cli_help_load_neither_torch_nor_lightning():
    code = ("import sys, anomalygen.detectors, anomalygen.cli; "
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ctrl_c_raises_keyboard_interrupt_and_leaves_sigint_handled(tmp_path):
    """Lightning answers Ctrl+C with sys.exit(1) and ignores SIGINT from then on; fit_network raises
    KeyboardInterrupt instead, keeps the complete epochs resumable and restores the handler."""
    code = f"""
import os, signal, sys, threading, time
sys.path.insert(0, {str(FIXTURES.parent)!r})
import training_fixtures as fx
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job inherits SIGINT ignored
ckpt = {str(tmp_path / "checkpoints" / "last.ckpt")!r}
def interrupt():
    while not os.path.exists(ckpt):
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=interrupt, daemon=True).start()
try:
    fx.fit_tiny({str(tmp_path)!r}, epochs=20, delay=0.01)
except KeyboardInterrupt:
    print("interrupted", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "interrupted True", res.stdout + res.stderr
    _, result = fx.fit_tiny(tmp_path, epochs=20, resume=True)
    assert 1 <= result.resumed_from < 20 and result.epochs == 20


def test_sigterm_stops_a_long_step_at_once_and_keeps_the_complete_epochs(tmp_path):
    """Lightning alone would finish the running step first (here 60 s long, as a large network's step on a
    CPU can be); the fit raises Terminated within seconds instead, and the epochs done resume."""
    code = f"""
import sys, time
sys.path.insert(0, {str(FIXTURES.parent)!r})
import training_fixtures as fx
from anomalygen.errors import Terminated

def slow_from_step_7(network, batch, calls=[]):  # epoch 2 starts at step 7 (6 steps an epoch)
    calls.append(1)
    if len(calls) >= 7:
        print("slow step", flush=True)
        time.sleep(60)
    return fx.tiny_loss(network, batch)

try:
    fx.fit_tiny({str(tmp_path)!r}, epochs=3, loss=slow_from_step_7)
except Terminated as exc:
    print("terminated", exc, flush=True)
    sys.exit(143)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "slow step", proc.stderr.read()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=50)
    assert proc.returncode == 143 and "terminated by signal 15" in out, out + err
    assert time.monotonic() - sent < 10
    _, result = fx.fit_tiny(tmp_path, epochs=3, resume=True)
    assert result.resumed_from == 1 and result.epochs == 3
