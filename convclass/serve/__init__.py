"""Serving a model: a web page and a JSON API (Starlette on uvicorn), safe against bad uploads by default.

    from convclass.serve import serve_model, make_app
    serve_model("runs/digits-cnn3", port=5678)            # blocks; the CLI's `convclass serve`
    app = make_app(load_predictor("model.onnx"))          # an ASGI app to mount elsewhere
"""
from .app import make_app, model_info
from .limits import RequestError, ServeLimits
from .server import serve_model

__all__ = ["RequestError", "ServeLimits", "make_app", "model_info", "serve_model"]
