"""CLI: bad input gives one ``error:`` line and exit status 2 with nothing half-written;
checkpoints resume; runs are deterministic; the seed's VGG-like net and the CIFAR ResNet-18
build, train a few steps on tiny fake CIFAR-format data, export and run bit-exactly in golden."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golden.model import load_model, predict
from train.cli import load_trained, main
from train.trainer import predict as torch_predict, to_tensor

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--fp-epochs", "1", "--epochs", "1", "--max-steps", "3", "--no-progress", "--width",
        "0.5"]


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("args,needle", [
    (["--model", "alexnet"], "--model: 'alexnet'"),
    (["--dataset", "imagenet"], "--dataset: 'imagenet'"),
    (["--w-bits", "1"], "w_bits: 1"),
    (["--a-bits", "17"], "a_bits: 17"),
    (["--act", "tanh"], "--act: 'tanh'"),
    (["--model", "mnist", "--dataset", "digits"], "do not fit"),
    (["--dataset", "cifar10", "--model", "vgg", "--data-dir", "/nonexistent"],
     "data_batch_1: file is missing"),
])
def test_bad_input_one_message(tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)] + FAST) == 2
    assert needle in _err(capsys)
    assert not out.exists()


def test_module_entry_point_exit_status(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "train", "--model", "nope", "--out",
                        str(tmp_path / "x")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.startswith("error: --model: 'nope'")


def test_corrupt_checkpoint_and_init(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["--out", str(out), "--export", str(tmp_path / "exp")] + FAST) == 2
    assert "corrupt or unreadable checkpoint" in _err(capsys)
    assert not (tmp_path / "exp").exists()
    assert main(["--out", str(out), "--init", str(tmp_path / "missing.pt")] + FAST) == 2
    assert "missing.pt: file is missing" in _err(capsys)


def test_eval_export_and_corrupt_export(tmp_path: Path, capsys) -> None:
    shipped = ROOT / "models" / "digits"
    if (shipped / "manifest.json").is_file():
        assert main(["--eval-export", str(shipped)]) == 0
        out = capsys.readouterr().out
        assert "golden test accuracy" in out
    bad = tmp_path / "exp"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    (bad / "tensors.npz").write_bytes(b"")
    assert main(["--eval-export", str(bad)]) == 2
    assert "manifest.json: not valid JSON" in _err(capsys)


def test_resume_and_determinism(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["--out", str(a), "--w-bits", "3", "--a-bits", "3"] + FAST) == 0
    assert main(["--out", str(b), "--w-bits", "3", "--a-bits", "3"] + FAST) == 0
    ma, mb = load_model(a / "export"), load_model(b / "export")
    for la, lb in zip(ma.layers, mb.layers):
        assert la.attrs == lb.attrs
        for k in la.arrays:
            assert np.array_equal(la.arrays[k], lb.arrays[k])
    # resuming a finished run re-exports the same model without training again
    stamp = (a / "checkpoint.pt").stat().st_mtime_ns
    assert main(["--out", str(a), "--w-bits", "3", "--a-bits", "3"] + FAST) == 0
    assert (a / "checkpoint.pt").stat().st_mtime_ns == stamp
    mc = load_model(a / "export")
    assert all(np.array_equal(x.arrays[k], y.arrays[k])
               for x, y in zip(ma.layers, mc.layers) for k in x.arrays)
    # a checkpoint of another configuration is refused
    assert main(["--out", str(a), "--w-bits", "4"] + FAST) == 2


def _fake_cifar(d: Path, n: int = 16) -> None:
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        obj = {b"data": rng.integers(0, 256, size=(n, 3072)).astype(np.uint8),
               b"labels": rng.integers(0, 10, size=n).tolist()}
        (d / name).write_bytes(pickle.dumps(obj))


@pytest.mark.parametrize("model,act", [("vgg", "threshold"), ("resnet18", "threshold"),
                                       ("resnet18", "shift")])
def test_cifar_models_bit_exact(tmp_path: Path, model: str, act: str) -> None:
    _fake_cifar(tmp_path)
    out = tmp_path / "run"
    assert main(["--model", model, "--dataset", "cifar10", "--data-dir", str(tmp_path),
                 "--out", str(out), "--act", act, "--w-bits", "3", "--a-bits", "3",
                 "--fp-epochs", "1", "--epochs", "1", "--max-steps", "2", "--batch", "8",
                 "--width", "0.125", "--no-progress"]) == 0
    gm = load_model(out / "export")
    net = load_trained(out / "export")
    x = np.stack([pickle.loads((tmp_path / "test_batch").read_bytes())[b"data"][:4]]
                 ).reshape(4, 3, 32, 32).astype(np.int64)
    t = torch_predict(net, to_tensor(x)).numpy()
    g, cls = predict(gm, x.transpose(0, 2, 3, 1))
    assert np.array_equal(t.astype(np.int64), g) and np.array_equal(t.argmax(1), cls)
    if model == "resnet18":
        assert sum(lay.op == "add" for lay in gm.layers) == 8


# ---------------------------------------------------------------------------------------------
# issue 12: crafted checkpoints, two trainings on one --out
# ---------------------------------------------------------------------------------------------


class _Crafted:
    """Unpickling this calls ``open(marker, 'w')`` (the shape of any code-running pickle)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_pt(path: Path, marker: Path) -> Path:
    import torch
    torch.save({"net": _Crafted(marker), "phase": 0, "epoch": 0, "run": {}}, path)
    return path


def test_crafted_checkpoint_refused_before_it_runs(tmp_path: Path, capsys) -> None:
    """A checkpoint.pt in --out (and an --init file, and an export's torch_state.pt) whose
    pickle would create a marker file is refused with one line; the marker never appears."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    _crafted_pt(out / "checkpoint.pt", marker)
    assert main(["--out", str(out), "--export", str(tmp_path / "exp")] + FAST) == 2
    err = _err(capsys)
    assert "checkpoint.pt: refused: the pickle asks for io.open (only tensors and plain data" \
        in err
    assert not marker.exists() and not (tmp_path / "exp").exists()
    init = _crafted_pt(tmp_path / "init.pt", marker)
    assert main(["--out", str(tmp_path / "run2"), "--init", str(init)] + FAST) == 2
    assert "init.pt: refused" in _err(capsys)
    exp = tmp_path / "export"
    exp.mkdir()
    _crafted_pt(exp / "torch_state.pt", marker)
    with pytest.raises(ValueError, match=r"torch_state.pt: refused"):
        load_trained(exp)
    assert not marker.exists()


def test_second_training_on_same_out_refused(tmp_path: Path, capsys) -> None:
    """While a training holds --out (its lock names a running pid: this one), a second one
    exits 2 with one line naming --out and the pid, and writes nothing."""
    from train.trainer import LOCK_NAME, run_lock
    out = tmp_path / "run"
    with run_lock(out) as lock:
        assert main(["--out", str(out)] + FAST) == 2
        err = _err(capsys)
        assert f"--out {out}: another training (pid {os.getpid()} on" in err
        assert lock.read_text().split()[0] == str(os.getpid())
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert not (out / LOCK_NAME).exists()  # released on exit


def test_stale_lock_taken_over(tmp_path: Path) -> None:
    """A lock left by a process that is gone (kill -9) or a malformed one is replaced."""
    import socket

    from train.trainer import LOCK_NAME, RunLockError, run_lock
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "run"
    out.mkdir()
    host = socket.gethostname()
    notes: list[str] = []
    for content in (f"{dead.pid} {host}\n", "", "garbage"):
        (out / LOCK_NAME).write_text(content)
        with run_lock(out, log=notes.append) as lock:
            assert lock.read_text() == f"{os.getpid()} {host}\n"
        assert not lock.exists()
    assert len(notes) == 3 and f"pid {dead.pid} is not running" in notes[0]
    (out / LOCK_NAME).write_text(f"{dead.pid} another-host\n")  # cannot tell: never taken
    with pytest.raises(RunLockError, match=r"another training \(pid \d+ on another-host\)"):
        with run_lock(out):
            pass
    assert (out / LOCK_NAME).read_text() == f"{dead.pid} another-host\n"
