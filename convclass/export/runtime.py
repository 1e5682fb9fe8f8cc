"""Running exported models: one predictor interface for ONNX Runtime, TorchScript and PyTorch checkpoints.

Only data is loaded unless the caller asks for more: checkpoints weights-only, .onnx graphs (no code), and a
TorchScript file (a program) only with runtime="torchscript".

Every predictor has the attributes of `convclass.inference.LoadedModel` that prediction needs (arch, classes,
preprocess, metrics, name) plus `preprocess_files(paths)` and `predict_proba(x_uint8)`, so `predict_images` and
the server treat them alike; the exported ones derive from `ExportedModel` (exported.py).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConvclassError
from ..inference import load_model, predict_with

__all__ = ["load_predictor", "predict_images", "detect_runtime", "is_torchscript", "RUNTIMES"]


def is_torchscript(path: str | Path) -> bool:
    """A TorchScript archive: a zip holding compiled code (code/, constants.pkl) or convclass's TorchScript
    metadata. Read from the zip's directory only; nothing in it is unpickled or compiled."""
    import zipfile
    p = Path(path)
    try:
        if not (p.is_file() and zipfile.is_zipfile(p)):
            return False
        with zipfile.ZipFile(p) as z:
            return any(n.endswith(("/constants.pkl", "extra/convclass.json")) or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def detect_runtime(path: str | Path) -> str:
    """'onnx' for .onnx files, 'openvino' for .xml IR, 'torchscript' for TorchScript archives, 'torch' for runs
    and checkpoints."""
    p = Path(path)
    if p.suffix.lower() in (".onnx", ".xml"):
        return {".onnx": "onnx", ".xml": "openvino"}[p.suffix.lower()]
    return "torchscript" if is_torchscript(p) else "torch"


def _openvino_export(run: Path, given) -> Path:
    cand = run / "export" / "model.openvino.xml"
    if not (run.is_dir() and cand.is_file()):
        raise ConvclassError(f"--runtime openvino needs an OpenVINO export; make one first with "
                             f"`convclass export {given} --format openvino`")
    return cand


RUNTIMES = ("auto", "torch", "onnx", "torchscript", "openvino")


def load_predictor(path: str | Path, runtime: str = "auto", device: str = "auto", threads: int | None = None,
                   precision: str = "auto"):
    """A predictor for a run folder, checkpoint or .onnx file, or for a TorchScript file when asked for.

    runtime: auto (from the file; never TorchScript), torch (run folder or checkpoint, loaded weights-only),
    onnx (an .onnx file, or the run's export/model.onnx), openvino (an .xml IR, or the run's
    export/model.openvino.xml), torchscript (the explicit opt-in: a TorchScript file
    is a program, and loading it runs it). `precision` (precision.py) applies to PyTorch models only.
    """
    if runtime not in RUNTIMES:
        raise ConvclassError(f"--runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    p = Path(path).expanduser()
    found = detect_runtime(p)
    if found == "torchscript" and runtime != "torchscript":
        raise ConvclassError(f"refusing {path}: it is a TorchScript file, which is code that runs when loaded; "
                             "serve or predict with the run folder or an .onnx export instead, or, only if you "
                             "trust the file, pass --runtime torchscript")
    if precision not in ("auto", "fp32") and (runtime not in ("auto", "torch") or found != "torch"):
        raise ConvclassError(f"--precision {precision} is for run folders and checkpoints; exported "
                             "models (ONNX, OpenVINO, TorchScript) run as they were exported (drop --precision)")
    if runtime == "torchscript":
        if found != "torchscript":
            raise ConvclassError(f"--runtime torchscript needs a TorchScript file; {path} is not one "
                                 "(leave out --runtime for run folders, checkpoints and .onnx files)")
        from .torchscript import TorchScriptModel
        return TorchScriptModel(p)
    if runtime == "onnx" and found == "torch":
        # the fp32 export when there is one, else the int8 one (`export --int8` writes only model-int8.onnx)
        cand = next((c for c in (p / "export" / n for n in ("model.onnx", "model-int8.onnx")) if c.is_file()),
                    None) if p.is_dir() else None
        if cand is None:
            raise ConvclassError(f"--runtime onnx needs an .onnx file; export one first with "
                                 f"`convclass export {path} --format onnx`")
        p, found = cand, "onnx"
    if runtime == "openvino" and found == "torch":
        p, found = _openvino_export(p, path), "openvino"
    if runtime in ("onnx", "openvino") and found != runtime:
        raise ConvclassError(f"--runtime {runtime} cannot run {path}, a {found} model; pass its run folder or "
                             f"leave out --runtime")
    if runtime == "torch" and found != "torch":
        raise ConvclassError(f"{path} is an {found} model; use --runtime {found} (or pass the run folder)")
    if found == "openvino":
        from .openvino_runtime import OpenVinoModel
        return OpenVinoModel(p, threads=threads)
    if found == "onnx":
        from .onnx_runtime import OnnxModel
        return OnnxModel(p, threads=threads)
    lm = load_model(p, device, precision)
    lm.name = (p.name if p.is_dir() else p.parent.name)
    lm.runtime = "torch"
    return lm


def predict_images(predictor, inputs: list[str], topk: int = 5, batch_size: int = 256
                   ) -> tuple[list[dict], list[tuple[str, str]]]:
    """Same output as convclass.inference.predict: ([{path, top: [(class, prob), ...]}], skipped)."""
    return predict_with(predictor, inputs, topk, batch_size)
