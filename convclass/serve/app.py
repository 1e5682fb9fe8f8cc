"""The web app: page, JSON API, OpenAPI schema; every client mistake answered with a 4xx and a message."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..checks import display_names
from .batcher import MicroBatcher
from .body import extract_images, read_body
from .cam import overlay_png
from .limits import RequestError, ServeLimits
from .openapi import openapi_schema
from .query import query_checker
from .uploads import decode_upload

__all__ = ["make_app", "model_info"]

log = logging.getLogger("convclass.serve")
STATIC = Path(__file__).parent / "static"
PAGE_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
              "app.css": "text/css; charset=utf-8"}
# The page loads only its own script and style; images are previews (blob:) and overlays (data:).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
THUMB = 256  # pixels a side of the image under a Grad-CAM overlay


def _cam_layer(predictor) -> str | None:
    """The layer Grad-CAM hooks, or None when it cannot run (exported models have no gradients here)."""
    model = getattr(predictor, "model", None)
    if getattr(predictor, "runtime", "") != "torch" or not hasattr(model, "gradcam_layer"):
        return None
    return model.gradcam_layer()


def model_info(predictor, limits: ServeLimits) -> dict:
    test_acc = predictor.metrics.get("test_acc")
    return {"name": getattr(predictor, "name", predictor.arch), "arch": predictor.arch,
            "runtime": getattr(predictor, "runtime", "torch"), "classes": list(predictor.classes),
            "class_names": display_names(predictor),  # what the page shows; `classes` stay the keys
            "num_classes": len(predictor.classes), "img_size": predictor.img_size, "channels": predictor.channels,
            "mean": list(predictor.mean), "std": list(predictor.std),
            "test_acc": float(test_acc) if test_acc is not None else None, "gradcam": _cam_layer(predictor) is not None,
            # multi: sigmoid per label, each answered at its threshold (tuned on validation)
            "task": getattr(predictor, "task", "single"), "thresholds": getattr(predictor, "thresholds", None),
            "limits": {"max_upload_bytes": limits.max_upload_bytes, "max_pixels": limits.max_pixels,
                       "max_files": limits.max_files, "max_gradcam": limits.max_gradcam}}


class SecurityHeaders:
    """Pure ASGI middleware: headers that stop sniffing, framing and caching on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                         (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store"),
                         (b"content-security-policy", CSP.encode())]
                headers += [(k, v) for k, v in extra if k not in names]
                msg = dict(msg, headers=headers)
            await send(msg)
        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """Pure ASGI middleware: the DNS-rebinding guard, answering a Host header not in `allowed` with JSON 400
    (Starlette's TrustedHostMiddleware answers plain text and cannot parse an IPv6 literal such as [::1])."""

    def __init__(self, app, allowed: list[str]):
        self.app = app
        self.allowed = [h.lower() for h in allowed]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        name = raw[: raw.find("]") + 1] if raw.startswith("[") else raw.rsplit(":", 1)[0]
        if name.lower() in self.allowed:
            return await self.app(scope, receive, send)
        shown = "".join(ch if ch.isprintable() else "?" for ch in raw)[:60]
        await JSONResponse({"error": f"Host header {shown!r} refused (DNS-rebinding guard); open the server as "
                                     f"{', '.join(self.allowed)}"}, status_code=400)(scope, receive, send)


def make_app(predictor, limits: ServeLimits = ServeLimits(), allowed_hosts: list[str] | None = None) -> Starlette:
    """A Starlette app serving `predictor` (LoadedModel, OnnxModel or TorchScriptModel).

    allowed_hosts: Host header values accepted (DNS-rebinding guard); None accepts any.
    """
    batcher = MicroBatcher(predictor.predict_proba, limits.max_batch)
    # Decoding a big image takes width x height x 3 bytes; a few at a time bounds the server's memory.
    decode_slots = asyncio.Semaphore(max(2, os.cpu_count() or 2))
    pages = {name: (STATIC / name).read_bytes() for name in PAGE_TYPES}
    info = model_info(predictor, limits)
    schema = openapi_schema(limits, info["name"], len(predictor.classes))
    cam_layer = _cam_layer(predictor)
    counters = {"requests": 0, "client_errors": 0, "server_errors": 0, "started": time.time()}

    def page(name: str):
        async def endpoint(request: Request) -> Response:
            return Response(pages[name], media_type=PAGE_TYPES[name])
        return endpoint

    def api_route(path: str, endpoint) -> Route:
        """`path` with the method the schema publishes; the query string is checked against the same schema's
        parameters, and `endpoint(request, query)` gets the checked values."""
        ((method, operation),) = schema["paths"][path].items()
        check = query_checker(operation.get("parameters", []))

        async def checked(request: Request) -> Response:
            return await endpoint(request, check(request.query_params.multi_items()))
        return Route(path, checked, methods=[method.upper()])

    async def health(request: Request, query: dict) -> JSONResponse:
        return JSONResponse({"status": "ok", "uptime_s": round(time.time() - counters["started"], 1),
                             "requests": counters["requests"], "client_errors": counters["client_errors"],
                             "server_errors": counters["server_errors"], **batcher.stats})

    async def api_model(request: Request, query: dict) -> JSONResponse:
        return JSONResponse(info)

    async def api_openapi(request: Request, query: dict) -> JSONResponse:
        return JSONResponse(schema)

    def explain(x_uint8: torch.Tensor, target: int, thumb) -> str:
        from ..interpret import grad_cam  # on first use: interpret also loads the plotting helpers
        model = predictor.model
        dev = next(model.parameters()).device
        cams, _, _ = grad_cam(model, predictor.preprocess.to_input(x_uint8, dev), layer=cam_layer, target=target)
        return overlay_png(thumb, cams[0].numpy())

    async def api_predict(request: Request, query: dict) -> JSONResponse:
        t0 = time.perf_counter()
        counters["requests"] += 1
        k, want_cam = query["topk"], query["gradcam"]
        if want_cam and cam_layer is None:
            raise RequestError(400, "Grad-CAM needs a PyTorch model with convolutions; serve the run folder, "
                                    "not an exported file")
        body = await read_body(request, limits)
        files = await extract_images(request, body, limits)
        del body
        arrays, thumbs = [], []
        for i, (name, data) in enumerate(files):
            thumb = THUMB if want_cam and i < limits.max_gradcam else None
            async with decode_slots:
                try:
                    a, th = await run_in_threadpool(decode_upload, data, predictor.preprocess,
                                                    limits.max_pixels, thumb)
                except RequestError as e:
                    prefix = f"image {i + 1} ({name}): " if len(files) > 1 or name != "image-1" else ""
                    raise RequestError(e.status, prefix + e.message) from None
            arrays.append(a)
            thumbs.append(th)
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()   # (N, C, H, W) uint8
        probs = await batcher.predict(x)
        p, idx = probs.topk(k, dim=1)
        preds = [{"file": name, "top": [{"class": predictor.classes[j], "name": info["class_names"][j],
                                         "prob": round(float(q), 6)}
                                        for j, q in zip(ix, pr)]}
                 for (name, _), pr, ix in zip(files, p.tolist(), idx.tolist())]
        if info["task"] == "multi":  # every label at or above its threshold, most probable first
            for pred, row in zip(preds, probs.tolist()):
                pred["labels"] = sorted(({"class": c, "name": info["class_names"][j], "prob": round(row[j], 6),
                                          "threshold": info["thresholds"][j]} for j, c in enumerate(predictor.classes)
                                         if row[j] >= info["thresholds"][j]), key=lambda d: -d["prob"])
        for i in range(min(len(preds), limits.max_gradcam) if want_cam else 0):
            preds[i]["gradcam"] = await batcher.run_exclusive(explain, x[i:i + 1], idx[i, 0].item(), thumbs[i])
        return JSONResponse({"model": info["name"], "predictions": preds,
                             "seconds": round(time.perf_counter() - t0, 4)})

    async def on_request_error(request: Request, exc: RequestError) -> JSONResponse:
        counters["client_errors"] += 1
        headers = {"connection": "close"} if exc.status in (408, 413) else None
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        counters["client_errors"] += 1
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        counters["server_errors"] += 1
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"error": "internal server error; the server log has the details"}, status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    routes = [Route("/", page("index.html")), Route("/app.js", page("app.js")), Route("/app.css", page("app.css")),
              api_route("/health", health), api_route("/api/model", api_model),
              api_route("/openapi.json", api_openapi), api_route("/api/predict", api_predict)]
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts:
        middleware.append(Middleware(HostCheck, allowed=allowed_hosts))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={RequestError: on_request_error, HTTPException: on_http_error,
                                        Exception: on_crash})
    app.state.batcher = batcher
    app.state.counters = counters
    return app
