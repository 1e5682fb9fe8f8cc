"""Sweep figures as PNG with matplotlib (no plotly): optimisation history and parameter importance."""
from __future__ import annotations

from pathlib import Path

from ..plotting import subplots  # figures of their own: pyplot's backend is left alone

__all__ = ["plot_history", "plot_importance"]


def plot_history(trials, path: str | Path, title: str = "") -> Path:
    """Each trial's objective (val_acc) by trial number, pruned trials at their last report, and the best so far."""
    fig, ax = subplots(figsize=(6, 4))
    done = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in trials
              if t.state.name == "PRUNED" and t.intermediate_values]
    if done:
        ax.plot(*zip(*done), "o", color="C0", label="completed")
        best, line = -1.0, []
        for n, v in sorted(done):
            best = max(best, v)
            line.append((n, best))
        ax.step(*zip(*line), where="post", color="C3", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned), "x", color="0.5", label="pruned (last report)")
    failed = [t.number for t in trials if t.state.name == "FAIL"]
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title + (f"  ({len(failed)} failed)" if failed else ""))
    if done or pruned:
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def plot_importance(study, path: str | Path) -> Path | None:
    """fANOVA importance of each searched parameter for val_acc; None when there is too little to tell."""
    import optuna
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None
    if not imp:
        return None
    names = list(imp)[::-1]  # most important at the top
    fig, ax = subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, [imp[n] for n in names], color="C0")
    ax.set_xlabel("importance for validation accuracy (fANOVA, sums to 1)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
