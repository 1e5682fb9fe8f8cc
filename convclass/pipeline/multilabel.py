"""The test step of a multi-label run: per-label thresholds tuned on the validation split (max F1 each), stored in
best.pt, then best.pt scored on the test split at those thresholds (and at 0.5, to show what tuning bought)."""
from __future__ import annotations

import json

import numpy as np

from ..checkpoint import save_checkpoint
from ..metrics import multilabel_metrics, tune_thresholds
from ..progress import Bar, interactive
from ..training import TrainState, validate

__all__ = ["score_multilabel"]


def score_multilabel(state: TrainState, model, best: dict, probs) -> dict:
    """test_metrics.json and best.pt with "thresholds" and the test figures; returns the metrics. `probs`: best.pt's
    sigmoid outputs on the test split (N, K)."""
    run_dir, data, cfg, log = state.run_dir, state.data, state.cfg, state.log
    thresholds = np.full(len(data.classes), 0.5)
    if len(data.val):
        with Bar("thresholds", interactive(cfg.quiet)) as bar:
            _, val_probs = validate(model, data.val, data, state.device, state.eval_batch_size, tta=cfg.tta,
                                    precision=state.precision, progress=bar)
        thresholds = tune_thresholds(data.val.y.numpy(), val_probs.numpy())
    y = data.test.y.numpy()
    m = multilabel_metrics(y, probs.numpy(), data.classes, thresholds)
    at_half = multilabel_metrics(y, probs.numpy(), data.classes)
    m.update(f1_macro_at_half=at_half["f1_macro"], f1_micro_at_half=at_half["f1_micro"],
             checkpoint_epoch=best["epoch"] + 1, tta=cfg.tta, thresholds_from="validation" if len(data.val) else
             "default 0.5 (no validation images)")
    (run_dir / "test_metrics.json").write_text(json.dumps(m, indent=1))
    best["thresholds"] = [float(t) for t in thresholds]
    best["metrics"] = {**best["metrics"], "test_map": m["map"], "test_f1_macro": m["f1_macro"],
                       "test_f1_micro": m["f1_micro"], "test_n": m["n"]}
    save_checkpoint({k: v for k, v in best.items() if k != "format"}, run_dir / "best.pt")
    log(f"test mAP {m['map']:.4f}  macro F1 {m['f1_macro']:.4f} (at 0.5: {m['f1_macro_at_half']:.4f})  micro F1 "
        f"{m['f1_micro']:.4f}  subset accuracy {m['subset_accuracy']:.2%}  Hamming loss {m['hamming_loss']:.4f}  "
        f"({m['n']} images, best epoch {m['checkpoint_epoch']}, per-label thresholds tuned on validation)")
    return m
