"""`export_model`: checkpoint -> ONNX or TorchScript file + JSON metadata, verified against PyTorch first."""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..checkpoint import resolve_checkpoint
from ..errors import ConvclassError
from ..inference import predict_logits
from ..models import model_from_checkpoint
from .metadata import build_metadata, write_sidecar
from .parity import accuracy, check_parity, compare_probs, load_samples

__all__ = ["ExportResult", "export_model", "FORMATS"]

FORMATS = ("onnx", "torchscript", "openvino")
CALIB_IMAGES = 256  # enough for stable activation ranges on small CNNs, quick to run


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    format: str
    precision: str
    parity: dict                 # this file against PyTorch: n, top1_mismatches, max_abs_prob_diff
    samples: str                 # what the checks ran on
    fp32_parity: dict | None = None  # int8: the fp32 graph's check, passed before it was quantized
    accuracy: dict = field(default_factory=dict)   # int8: torch / int8 accuracy and the drop
    quantization: str | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        size = self.path.stat().st_size / 1e6
        lines = [f"wrote {self.path} ({size:.1f} MB, {self.format} {self.precision}) and {self.sidecar}"]
        if self.fp32_parity:
            lines.append(f"fp32 graph before quantization: {_agreement(self.fp32_parity)}")
        lines.append(f"{self.precision} model against PyTorch on {self.samples}: {_agreement(self.parity)}")
        if self.quantization:
            lines.append(f"int8 quantization: {self.quantization}")
        a = self.accuracy
        if "int8" in a:
            lines.append(f"test accuracy: PyTorch fp32 {a['torch']:.4f}, int8 {a['int8']:.4f}, "
                         f"drop {a['drop'] * 100:+.2f} points")
        elif "top1_agreement" in a:
            lines.append(f"int8 top-1 agreement with PyTorch on synthetic images: {a['top1_agreement']:.4f} "
                         "(no labelled test data, so no accuracy drop)")
        return "\n".join(lines)


def _agreement(p: dict) -> str:
    return f"top-1 mismatches {p['top1_mismatches']}/{p['n']}, max |dprob| {p['max_abs_prob_diff']:.2e}"


def _default_output(ckpt_path: Path, fmt: str, int8: bool) -> Path:
    name = {"onnx": "model-int8.onnx" if int8 else "model.onnx", "torchscript": "model.torchscript.pt",
            "openvino": "model.openvino.xml"}[fmt]
    return ckpt_path.parent / "export" / name


def _remove(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            p.unlink()


def export_model(run_or_ckpt: str | Path, format: str = "onnx", output: str | Path | None = None,
                 dynamic_batch: bool = True, int8: bool = False, data: str | None = None,
                 samples: int = 64, data_root: str | None = None) -> ExportResult:
    """Export a run's best checkpoint and check it against PyTorch before returning (ConvclassError if not equal).

    format: onnx | torchscript. dynamic_batch: ONNX batch dimension left free, so servers can batch requests
    (False: fixed at 1, for runtimes that need static shapes; TorchScript is always dynamic). int8: ONNX static quantization; its accuracy drop on the test split is measured.
    data: the dataset for the checks (default: the one the run trained on; synthetic images if unavailable).
    """
    t0 = time.perf_counter()
    fmt = format.lower()
    if fmt not in FORMATS:
        raise ConvclassError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    if int8 and fmt != "onnx":
        raise ConvclassError("--int8 is only available with --format onnx")
    ckpt_path = resolve_checkpoint(run_or_ckpt)
    model, pre, _, ckpt = model_from_checkpoint(ckpt_path)
    out = Path(output) if output else _default_output(ckpt_path, fmt, int8)
    out.parent.mkdir(parents=True, exist_ok=True)

    smp = load_samples(ckpt, pre, data, n_parity=samples, n_calib=CALIB_IMAGES if int8 else 0, need_test=int8,
                       data_root=data_root)
    logits = predict_logits(model, smp.test_x, pre.mean, pre.std, torch.device("cpu"))
    ref = (logits.sigmoid() if ckpt.get("task") == "multi" else logits.softmax(1)).numpy()  # as predictors give
    batch = "dynamic" if (dynamic_batch or fmt != "onnx") else 1
    meta = build_metadata(ckpt, pre, str(ckpt_path), runtime=fmt, precision="int8" if int8 else "fp32", batch=batch)

    if fmt == "torchscript":
        from .torchscript import TorchScriptModel, export_torchscript
        export_torchscript(model, out, pre.channels, pre.img_size, meta)
        try:
            parity = check_parity(ref, TorchScriptModel(out).predict_proba(smp.test_x).numpy(), "the TorchScript export")
        except ConvclassError:
            _remove(out)
            raise
        result = ExportResult(out, out, fmt, "fp32", parity, smp.source)
    elif fmt == "openvino":
        from .openvino_export import export_openvino
        parity = export_openvino(model, out, pre.channels, pre.img_size, meta, ref, smp.test_x)
        result = ExportResult(out, out, fmt, "fp32", parity, smp.source)
    else:
        from .onnx_export import export_onnx, quantize_int8
        from .onnx_runtime import OnnxModel
        fp32_path = out
        if int8:  # the fp32 graph is an intermediate: verify it, quantize it, then drop it
            fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent)
            os.close(fd)
            fp32_path = Path(tmp)
        try:
            fp32_meta = dict(meta, precision="fp32")
            export_onnx(model, fp32_path, pre.channels, pre.img_size, dynamic_batch, fp32_meta)
            parity = check_parity(ref, OnnxModel(fp32_path).predict_proba(smp.test_x).numpy(), "the ONNX export")
            result = ExportResult(out, out, fmt, "fp32", parity, smp.source)
            if int8:
                fixed = None if dynamic_batch else 1
                result.quantization = quantize_int8(fp32_path, out, smp.calib_x, pre, fixed, meta)
                result.precision = "int8"
                q = OnnxModel(out).predict_proba(smp.test_x).numpy()
                # int8 cannot meet the fp32 tolerance: its own figures are reported, not checked
                result.fp32_parity, result.parity = parity, compare_probs(ref, q)
                if smp.test_y is not None:
                    a_t, a_q = accuracy(ref, smp.test_y), accuracy(q, smp.test_y)
                    result.accuracy = {"torch": a_t, "int8": a_q, "drop": a_t - a_q, "n": int(len(smp.test_y))}
                else:
                    agree = 1.0 - result.parity["top1_mismatches"] / max(1, len(ref))
                    result.accuracy = {"top1_agreement": agree, "n": int(len(ref))}
        except BaseException:
            _remove(out)
            raise
        finally:
            if int8:
                _remove(fp32_path)
    meta.update(parity=result.parity, parity_samples=smp.source)
    # only what was measured: an fp32 export has no accuracy drop or quantization to report
    meta.update({k: v for k, v in (("fp32_parity", result.fp32_parity), ("accuracy", result.accuracy),
                                   ("quantization", result.quantization)) if v})
    result.sidecar = write_sidecar(out, meta)
    result.seconds = time.perf_counter() - t0
    return result
