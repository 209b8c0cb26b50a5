"""The baseline: an inference service as a tutorial writes it, kept to measure against.

Pillow decodes the full frame and resizes it, ``session.run`` is called inside the ``async def``
handler (blocking the event loop), post-processing loops in Python, results go out as JSON
lists. Run: ``NAIVE_MODEL_DIR=models/polyp-detector/1 uvicorn tests.perf.naive_service:app``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request
from PIL import Image

MODEL_DIR = Path(os.environ.get("NAIVE_MODEL_DIR", "models/polyp-detector/1"))
manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
session = ort.InferenceSession(str(MODEL_DIR / "model.onnx"), providers=["CPUExecutionProvider"])
app = FastAPI()


def preprocess(data: bytes) -> tuple[np.ndarray, int, int]:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    pre = manifest["preprocessing"]
    size_h, size_w = pre["size"]
    image = image.resize((size_w, size_h))
    array = np.array(image).astype(np.float32) * pre["scale"]
    array = (array - np.array(pre["mean"])) / np.array(pre["std"])
    return array.transpose(2, 0, 1)[None].astype(np.float32), width, height


def iou(a: list[float], b: list[float]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@app.post("/predict")
async def predict(request: Request) -> dict[str, Any]:
    tensor, width, height = preprocess(await request.body())
    outputs = session.run(None, {session.get_inputs()[0].name: tensor})
    task = manifest["task"]
    if task == "classification":
        logits = outputs[0][0]
        probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        return {"scores": probs.tolist()}
    if task == "detection":
        boxes, scores = outputs[0][0].tolist(), outputs[1][0].max(axis=1).tolist()
        size_h, size_w = manifest["preprocessing"]["size"]
        candidates = sorted(
            [(s, b) for s, b in zip(scores, boxes, strict=True) if s > 0.4], reverse=True
        )
        kept: list[tuple[float, list[float]]] = []
        for score, box in candidates:
            if all(iou(box, other) <= 0.45 for _, other in kept):
                kept.append((score, box))
        scale = [width / size_w, height / size_h, width / size_w, height / size_h]
        return {
            "detections": [
                {"box": [c * s for c, s in zip(box, scale, strict=True)], "score": score}
                for score, box in kept
            ]
        }
    mask = (outputs[0][0, 0] > 0).astype(np.uint8)
    mask = np.array(Image.fromarray(mask * 255).resize((width, height))) > 127
    return {"mask": mask.astype(int).tolist()}
