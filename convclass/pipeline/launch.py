"""The `--nproc` launch: a training run handed to torchrun, and the elastic restart that continues it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig, git_commit, save_config
from ..training.distributed import launch_torchrun
from ..training.runs import discard_unsaved, new_run_dir

__all__ = ["Launch", "LAUNCH_FLAGS", "launch", "restarted_run", "without_launch_flags"]

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
