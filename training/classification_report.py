"""Shipping a trained classifier: the ONNX graph checked, scored on the validation crops (the
test crops only with ``--evaluate-test``), and the manifest and the whole card written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from service.repository.manifest import (
    ClassificationDecoding,
    Manifest,
    Preprocessing,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, encoder, export, metrics, ship
from training.crops import NEGATIVE_COVER, POSITIVE_COVER, fixed_crops


def evaluate_arrays(session, prep: Preprocessing, crops: np.ndarray, labels: np.ndarray) -> dict:
    x = np.stack([data.to_input(c, prep.size, prep.mean, prep.std) for c in crops])
    name = session.get_inputs()[0].name
    logits = np.concatenate(
        [session.run(None, {name: x[i : i + 64]})[0] for i in range(0, len(x), 64)]
    )
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    if prob.shape[1] != 2:
        return {"accuracy": float((prob.argmax(1) == labels).mean()), "n": float(len(labels))}
    stats = metrics.binary_stats(prob[:, 1] >= 0.5, labels == 1)
    return {"roc_auc": metrics.roc_auc(prob[:, 1], labels == 1), **stats, "n": float(len(labels))}


def evaluate(session, prep: Preprocessing, samples: list[data.Sample], per_class: int, seed: int):
    crops, labels = fixed_crops(samples, per_class, seed, prep.size[0])
    return evaluate_arrays(session, prep, crops, labels)


def export_and_report(cfg, model, labels, val_crops, val_labels, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    version_dir = Path(cfg.out_dir) / cfg.name / str(cfg.version)
    shipped = ship.shipped_manifest(version_dir)  # read once: size, test record, command chain
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD
    size = (cfg.size, cfg.size)
    onnx_path = work_dir / "model.onnx"
    export.export_onnx(model, {"images": torch.zeros(1, 3, *size)}, onnx_path, ["logits"])
    sample_x = augment.normalise(torch.from_numpy(val_crops[:8]), mean, std).numpy()
    max_diff = export.parity(onnx_path, model, {"images": sample_x})
    latency = export.latency_ms(
        onnx_path, {"images": (1, 3, *size)}, runs=10 if cfg.dry_run else 100
    )
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {latency:.1f} ms (batch 1, 2 threads)")

    prep = Preprocessing(size=size, resize="stretch", mean=mean, std=std)
    evaluate_test = cfg.evaluate_test and not cfg.imagefolder_root
    tests, recorded = ship.test_record(shipped, version_dir, evaluate_test, onnx_path)
    session = export.ort_session(onnx_path)
    results = {"val": evaluate_arrays(session, prep, val_crops, val_labels)}
    if evaluate_test:
        test, clinic = ship.test_splits(data_root).values()
        if cfg.dry_run:
            test, clinic = test[:3], clinic[:3]
        per = cfg.crops_per_image
        results["kvasir_test_100_crops"] = evaluate(session, prep, test, per, cfg.seed + 1)
        results["clinicdb_test_62_crops"] = evaluate(session, prep, clinic, per, cfg.seed + 2)
    for split, values in results.items():
        print(split, json.dumps(values))
    crop_rule = (
        f"crops of 20-60% of the frame side; polyp if the mask covers >= {POSITIVE_COVER:.0%} of "
        f"the crop, no_polyp if <= {NEGATIVE_COVER:.1%}; {cfg.crops_per_image} per class per "
        "frame, seeded"
    )
    checkpoint = encoder.checkpoint(cfg.encoder)
    results = recorded | results
    network = f"EfficientNet-{cfg.encoder.capitalize()}"
    manifest = Manifest(
        task="classification",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"{network} classifier: does this colonoscopy image crop show a polyp? (research "
            "and education only). Softmax over `logits` gives [no_polyp, polyp]."
            if not cfg.imagefolder_root
            else f"{network} image classifier trained on an ImageFolder data set."
        ),
        inputs=[TensorSpec(name="images", dtype="float32", shape=[None, 3, *size])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, len(labels)])],
        labels=list(labels),
        preprocessing=prep,
        classification=ClassificationDecoding(activation="softmax"),
        defaults=ServingDefaults(top_k=min(5, len(labels)), max_batch_size=16),
        provenance=common.provenance(
            dataset="ImageFolder " + cfg.imagefolder_root
            if cfg.imagefolder_root
            else "Kvasir-SEG (Jha et al., 2020), crops labelled from the masks",
            split="train: crops of Kvasir-SEG minus the 100 PraNet test ids (10% of frames held "
            f"out for early stopping); test: {crop_rule}; from kvasir_test_100, clinicdb_test_62",
            command=ship.command_chain(shipped, train_command),
            pretrained=checkpoint.citation(),
            test_evaluations=tests,
        ),
        metrics=results,
    )
    export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir, "Classifier: cross-entropy")
    card.write_card(
        version_dir.parent / "README.md",
        manifest,
        summary="Polyp present / absent on colonoscopy image crops.",
        intended_use=(
            "Research and teaching demos of image classification served by polypserve (for "
            "example triaging regions of a frame). Not a medical device; not validated for "
            "clinical use."
        ),
        data=(
            f"Crops of Kvasir-SEG frames, labelled from the masks ({crop_rule}). "
            f"{card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}"
        ),
        anchors={
            "kvasir_test_100_crops/roc_auc": "target ≥ 0.98 (no published anchor)",
            "clinicdb_test_62_crops/roc_auc": "target ≥ 0.95",
        },
        architecture=(
            f"{network} whole (stem, blocks and the 1x1 head convolution), "
            f"{checkpoint.citation()}; global average pooling, dropout {cfg.dropout}, a new "
            f"linear layer; fine-tuned end to end with AdamW (lr {cfg.lr:g}, cosine schedule), "
            "label smoothing 0.05, random crops + flips + colour jitter, early stopping on the "
            f"validation loss. Input {size[0]}x{size[1]} stretched, x/255 normalised with mean "
            f"and std {list(mean)} / {list(std)}."
        ),
        headline=("val", "roc_auc"),
        tests=ship.test_note(tests, ["kvasir_test_100_crops", "clinicdb_test_62_crops"]),
        limits=[
            "'no_polyp' crops come from frames that contain a polyp elsewhere: the model has "
            "not seen polyp-free examinations.",
            "Crops near the cover thresholds are ambiguous by construction and were left out "
            "of training and test.",
        ],
        extra=export.export_note(max_diff, latency),
    )
    print(f"wrote {version_dir}")
    return results
