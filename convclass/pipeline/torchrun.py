"""The `--nproc` launch: a training run handed to torchrun, and the elastic restart that continues it."""
from __future__ import annotations

import errno
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig, git_commit, save_config
from ..errors import ConvclassError
from ..training.runs import discard_unsaved, new_run_dir

__all__ = ["Launch", "LAUNCH_FLAGS", "launch", "launch_torchrun", "restarted_run", "without_launch_flags"]

LAUNCH_FLAGS = {"--nproc", "--nnodes", "--node-rank", "--rdzv-endpoint", "--max-restarts"}


@dataclass(frozen=True)
class Launch:
    """torchrun's settings: workers per node, nodes, this node's rank, the rendezvous, restarts after a failure."""
    nproc: int
    nnodes: str = "1"
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    max_restarts: int = 0


def without_launch_flags(argv: list[str]) -> list[str]:
    """`train` flags for the workers: the launcher's own flags (and their values) left out."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.split("=", 1)[0] in LAUNCH_FLAGS:
            skip = "=" not in a
        else:
            out.append(a)
    return out


def launch(how: Launch, train_argv: list[str], config: TrainConfig | None = None) -> int:
    """Run `convclass train` under torchrun; returns its exit code.

    train_argv: the flags given to `train` (launch flags included; they are dropped here).
    config: the resolved config of a new one-node run. Its run folder is made here and the workers are started
    as `train --resume RUN`, so an elastic restart continues that run from its last checkpoint. None for a
    resumed or multi-node run: each node's workers then get train_argv as it is.
    """
    run_dir = None
    if config is None:
        argv = ["train"] + without_launch_flags(train_argv)
    else:
        run_dir = new_run_dir(config.runs_dir,
                              config.name or f"{config.data.rstrip('/').split('/')[-1]}-{config.model}")
        save_config(config.update(git_commit=git_commit(), world_size=how.nproc), run_dir / "config.yaml")
        argv = ["train", "--resume", str(run_dir)] + (["--quiet"] if config.quiet else [])
    rc = 1
    try:
        rc = launch_torchrun(argv, how.nproc, how.max_restarts, how.nnodes, how.rdzv_endpoint, how.node_rank)
        return rc
    finally:
        if rc != 0 and run_dir is not None:  # the workers failed before their first checkpoint: nothing to keep
            discard_unsaved(run_dir)


def restarted_run(config: TrainConfig, restart_count: int) -> Path | None:
    """The run folder a worker restarted by torchrun continues, or None.

    An elastic restart of a plain `torchrun … train --name NAME` (restart_count > 0) must continue that run,
    not start a new one: the first attempt wrote runs/NAME/config.yaml from these same flags.
    """
    if restart_count <= 0 or not config.name:
        return None
    run = Path(config.runs_dir) / config.name
    return run if (run / "config.yaml").exists() else None


def launch_torchrun(argv: list[str], nproc: int, max_restarts: int = 0, nnodes: str = "1",
                    rdzv_endpoint: str | None = None, node_rank: int | None = None) -> int:
    """Re-run `convclass <argv>` under torch's elastic launcher (torchrun) with nproc workers per node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", f"--nnodes={nnodes}",
           f"--max-restarts={max_restarts}"]
    if rdzv_endpoint:
        cmd += ["--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
        if nnodes == "1":
            # The only node must host the store. Left to guess, torchrun took a port held by another program
            # for a peer's store and waited on it for minutes; told to host, it fails at once (EADDRINUSE).
            _check_port_free(rdzv_endpoint)
            cmd += ["--rdzv-conf=is_host=1"]
    elif nnodes == "1":
        cmd += ["--standalone"]  # its store binds port 0 and keeps the socket: no free-port race
    if node_rank is not None:
        cmd += [f"--node-rank={node_rank}"]
    cmd += ["-m", "convclass"] + argv
    return subprocess.call(cmd)


def _check_port_free(endpoint: str) -> None:
    port = endpoint.rpartition(":")[2]
    if not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ConvclassError(f"--rdzv-endpoint {endpoint!r}: expected HOST:PORT with a port from 0 to 65535, "
                             "e.g. 127.0.0.1:29400")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the store binds: TIME_WAIT is no clash
        try:
            s.bind(("", int(port)))
        except OSError as e:
            why = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be listened on ({e.strerror})"
            raise ConvclassError(f"--rdzv-endpoint {endpoint}: port {port} {why}; pick a free port, or leave "
                                 "--rdzv-endpoint out on one machine") from None
