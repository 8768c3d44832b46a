"""CLI: bad input gives one ``error:`` line and exit status 2 with nothing half-written;
checkpoints resume; runs are deterministic; the seed's VGG-like net and the CIFAR ResNet-18
build, train a few steps on tiny fake CIFAR-format data, export and run bit-exactly in golden."""
from __future__ import annotations

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
