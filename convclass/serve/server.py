"""`serve_model`: load a run or an export and serve it with uvicorn, with safe defaults."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConvclassError
from .limits import ServeLimits

__all__ = ["serve_model", "default_runtime", "LOCAL_HOSTS"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _allowed_hosts(host: str) -> list[str] | None:
    """Bound to this machine: accept only local Host headers, so a web page cannot reach the server through
    DNS rebinding. Bound to the network: any Host (the operator chose to expose it)."""
    return ["127.0.0.1", "localhost", "[::1]"] if host in LOCAL_HOSTS else None


def _check_port(host: str, port: int) -> None:
    """Fail with one clear line when the address is taken, before loading the model and printing the URL."""
    import socket
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets too
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConvclassError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None


def default_runtime(model: str | Path, runtime: str) -> tuple[Path, str, str | None]:
    """(model, runtime, a note for the user). With runtime "auto", a run folder is served from its fp32 ONNX export
    when there is one at least as new as best.pt: ONNX Runtime is the fastest runtime that matches PyTorch
    (bench/onnx_vs_torch.py, in the README); else from best.pt with PyTorch (the only one with Grad-CAM)."""
    p = Path(model).expanduser()
    if runtime != "auto" or not (p / "best.pt").is_file():
        return p, runtime, None
    onnx = p / "export" / "model.onnx"
    if onnx.is_file() and onnx.stat().st_mtime >= (p / "best.pt").stat().st_mtime:
        return onnx, "onnx", (f"serving {onnx} with ONNX Runtime (faster than PyTorch); --runtime torch serves "
                              "best.pt with Grad-CAM")
    why = "is older than best.pt" if onnx.is_file() else "does not exist"
    return p, runtime, (f"serving best.pt with PyTorch: {onnx} {why}; `convclass export {model}` to serve it with "
                        "ONNX Runtime, the faster runtime")


def serve_model(model: str | Path, host: str = "127.0.0.1", port: int = 5678, runtime: str = "auto",
                device: str = "auto", limits: ServeLimits | None = None, threads: int | None = None,
                access_log: bool = False) -> None:
    """Serve a run folder, weights-only checkpoint or .onnx file until interrupted (Ctrl-C); a TorchScript file
    only with runtime="torchscript" (it is code, and loading it runs it)."""
    try:
        import uvicorn
    except ImportError:
        raise ConvclassError("serving needs uvicorn and starlette; pip install uvicorn starlette "
                             "python-multipart") from None
    import torch
    from PIL import Image

    from ..export import load_predictor
    from .app import make_app
    from .guard import guarded_protocol

    limits = limits or ServeLimits()
    _check_port(host, port)
    if threads:
        torch.set_num_threads(threads)
    # Backstop for any PIL decode in this process; uploads are also checked against the limit before decoding.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    model, runtime, note = default_runtime(model, runtime)
    if note:
        print(f"note: {note}", file=sys.stderr)
    predictor = load_predictor(model, runtime=runtime, device=device, threads=threads)
    app = make_app(predictor, limits, allowed_hosts=_allowed_hosts(host))
    # Connection limits live in the protocol (guard.py), not in uvicorn's limit_concurrency, which counts
    # idle sockets too and so let 64 silent clients lock everyone out. No WebSocket routes: an upgraded socket
    # would leave the guarded protocol, and its limits, behind.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=access_log,
                            server_header=False, http=guarded_protocol(limits), ws="none", timeout_keep_alive=5,
                            lifespan="on")
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    acc = predictor.metrics.get("test_acc")
    acc_txt = f", test accuracy {acc:.4f}" if acc is not None else ""
    print(f"serving {getattr(predictor, 'name', predictor.arch)} ({predictor.arch}, "
          f"{getattr(predictor, 'runtime', 'torch')}, {len(predictor.classes)} classes{acc_txt}) on "
          f"http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    if host not in LOCAL_HOSTS:
        print(f"warning: bound to {host}: anyone who can reach this machine can use the server", file=sys.stderr)
    server.run()
