"""Shared fixtures: a tiny synthetic RGB folder dataset, one trained run on it, and an in-process CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Set before torch is imported: on a small shared machine, more than one intra-op thread per test process only
# adds spin-waiting (measured: test_models.py 234 s -> 25 s wall on 2 busy cores). Subprocesses inherit it.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from synth import write_class_folders  # noqa: E402
# The suite's parity tests (exports, compile, micro-batches, resume, serving) compare fp32 numbers at tight
# tolerances, some against a subprocess; on a CPU with bf16 units --precision auto would switch them to bf16 autocast
# and fail them there only. Subprocesses inherit this; test_precision.py clears it where it runs bf16 on purpose.
os.environ["CONVCLASS_CPU_BF16"] = "0"

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def rgb_folder(tmp_path_factory) -> Path:
    """3 classes (red, green, blue) x 12 PNGs of 16x16: root/<class>/<image>, no split folders."""
    root = tmp_path_factory.mktemp("rgb") / "colours"
    write_class_folders(root, per_class=12, size=16)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, rgb_folder):
    """One small run shared by the evaluate / predict tests (shallow, 3 epochs, CPU)."""
    from convclass import train
    base = tmp_path_factory.mktemp("trained")
    return train(data=str(rgb_folder), model="shallow", epochs=3, batch_size=16, lr=0.01, device="cpu", report=False,
                 runs_dir=str(base / "runs"), data_root=str(base / "cache"), quiet=True, name="colours")


class CliResult:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err

    def __repr__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@pytest.fixture
def cli(capsys):
    """Run `convclass ARGS` in this process; returns rc, stdout, stderr (argparse exits become rc)."""
    from convclass.cli import main

    def run(*args) -> CliResult:
        capsys.readouterr()
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            rc = e.code if isinstance(e.code, int) else 1
        out, err = capsys.readouterr()
        return CliResult(rc, out, err)
    return run


def run_cli_subprocess(*args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """`python -m convclass ARGS` in a fresh interpreter, as a user would run it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "convclass", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=kw.pop("cwd", REPO), env=env, **kw)


def assert_one_line_error(res, *needles: str) -> None:
    """A user error: non-zero exit, exactly one `error: ...` line on stderr, no traceback."""
    err = res.err if hasattr(res, "err") else res.stderr
    rc = res.rc if hasattr(res, "rc") else res.returncode
    assert rc != 0, res
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1, err
    for n in needles:
        assert n.lower() in errors[0].lower(), (n, errors[0])


# --- a real `convclass serve` process (serve API, abuse and browser tests) ---------------------------------

class ServedModel:
    """A server subprocess on 127.0.0.1: its URL, its working folder (which must stay empty) and its temp folder."""

    def __init__(self, url: str, proc: subprocess.Popen, cwd: Path, tmp: Path, log: Path):
        self.url, self.proc, self.cwd, self.tmp, self.log = url, proc, cwd, tmp, log

    def get(self, path: str, timeout: float = 10):
        import json
        import urllib.request
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.status, json.loads(r.read())


def start_server(model_path, base: Path, *extra: str, timeout: float = 90) -> ServedModel:
    """`python -m convclass serve MODEL --port FREE` with its own cwd and TMPDIR; waits until /health answers."""
    import socket
    import time
    import urllib.request
    cwd, tmp = base / "cwd", base / "tmp"
    cwd.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = base / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "convclass", "serve", str(model_path), "--port", str(port),
                                 *extra], cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return ServedModel(url, proc, cwd, tmp, log)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not answer /health within {timeout} s:\n{log.read_text()}")


def stop_server(srv: ServedModel) -> None:
    srv.proc.terminate()
    try:
        srv.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()


@pytest.fixture(scope="session")
def served(tmp_path_factory, trained_run):
    """The shared trained run served by a real server process, for the whole session."""
    srv = start_server(trained_run.run_dir, tmp_path_factory.mktemp("serve"))
    yield srv
    stop_server(srv)


def pytest_collection_modifyitems(config, items):
    """`slow` tests run only when asked for (`pytest -m slow`, or any -m expression naming them)."""
    if config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="slow: run with `pytest -m slow`")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
