"""convclass serve"""
from .predict import add_runtime_flag


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="web page and JSON API for a run or an exported model")
    p.add_argument("model", metavar="RUN_OR_EXPORT",
                   help="run folder (its fresh export/model.onnx when there is one), .pt checkpoint, .onnx or "
                        "OpenVINO .xml file (a TorchScript file only with --runtime torchscript)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=int, default=5678)
    add_runtime_flag(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body (413 above)")
    p.add_argument("--max-pixels", type=int, default=25_000_000,
                   help="largest image (width x height), refused before decoding")
    p.add_argument("--max-files", type=int, default=32, help="most images in one request")
    p.add_argument("--max-batch", type=int, default=64, help="most images the model sees in one batch")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(fn=run)


def run(args) -> int:
    import os
    # The model shares the CPU with the HTTP loop and image decoding; OpenMP workers that spin between batches
    # would steal it (measured: p99 latency 2-3x worse under load). Must be set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from ..serve import ServeLimits, serve_model
    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_pixels=args.max_pixels,
                         max_files=args.max_files, max_batch=args.max_batch)
    serve_model(args.model, host=args.host, port=args.port, runtime=args.runtime, device=args.device,
                limits=limits, threads=args.threads, access_log=args.access_log)
    return 0
