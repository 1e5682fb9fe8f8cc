"""The OpenAPI 3 description of the JSON API, served at /openapi.json (written out: four endpoints)."""
from __future__ import annotations

from .limits import ServeLimits

__all__ = ["openapi_schema"]

_ERROR = {"description": "client error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_schema(limits: ServeLimits, title: str, num_classes: int) -> dict:
    """The published schema; its `parameters` are also what each endpoint validates its query string against
    (convclass.serve.query), so the two cannot drift."""
    mb = limits.max_upload_bytes / (1024 * 1024)
    predict_doc = (f"Top-k classes for one or several images (multipart/form-data, any file field; at most "
                   f"{limits.max_files} images, {mb:g} MB in all, {limits.max_pixels:,} pixels each), or one raw "
                   "image body (image/* or application/octet-stream). Any bad image fails the whole request.")
    return {
        "openapi": "3.0.3",
        "info": {"title": f"convclass: {title}", "version": "1",
                 "description": "Image classification with a trained convclass model. Query parameters are checked "
                                "against this document: a value out of range, a repeated or an unknown "
                                "parameter gets 400; so does a Host header other than the server's name."},
        "paths": {
            "/api/predict": {"post": {
                "summary": "classify images", "description": predict_doc,
                "parameters": [
                    {"name": "topk", "in": "query", "description": "how many classes to list, best first",
                     "schema": {"type": "integer", "minimum": 1, "maximum": num_classes,
                                "default": min(5, num_classes)}},
                    {"name": "gradcam", "in": "query", "schema": {"type": "boolean", "default": False},
                     "description": f"add a Grad-CAM overlay (PNG data URL) for the first {limits.max_gradcam} "
                                    "images; PyTorch models only"}],
                "requestBody": {"required": True, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                    "image/*": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {
                    "200": {"description": "predictions", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Predictions"}}}},
                    "400": _ERROR, "408": _ERROR, "413": _ERROR, "415": _ERROR, "503": _ERROR}}},
            "/api/model": {"get": {"summary": "the model being served", "responses": {"200": {
                "description": "model facts", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Model"}}}}, "400": _ERROR}}},
            "/health": {"get": {"summary": "liveness and counters", "responses": {"200": {
                "description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}},
                "400": _ERROR}}},
            "/openapi.json": {"get": {"summary": "this document", "responses": {
                "200": {"description": "OpenAPI"}, "400": _ERROR}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Prediction": {"type": "object", "properties": {
                "file": {"type": "string", "description": "the upload's base name, for display only"},
                "top": {"type": "array", "items": {"type": "object", "properties": {
                    "class": {"type": "string"}, "prob": {"type": "number"},
                    "name": {"type": "string", "description": "the class's display name (its key when it has none)"}}}},
                "gradcam": {"type": "string", "description": "PNG data URL, when asked for"}}},
            "Predictions": {"type": "object", "properties": {
                "model": {"type": "string"}, "seconds": {"type": "number"},
                "predictions": {"type": "array", "items": {"$ref": "#/components/schemas/Prediction"}}}},
            "Model": {"type": "object", "properties": {
                "name": {"type": "string"}, "arch": {"type": "string"}, "runtime": {"type": "string"},
                "classes": {"type": "array", "items": {"type": "string"}}, "img_size": {"type": "integer"},
                "channels": {"type": "integer"}, "test_acc": {"type": "number", "nullable": True},
                "gradcam": {"type": "boolean"}, "limits": {"type": "object"}}},
        }},
    }
