"""Shipping a trained segmenter: its input size chosen on validation, the ONNX graph checked,
the splits scored by the PraNet protocol (the test splits only with ``--evaluate-test``), and the
manifest and the whole card written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from service.repository.manifest import (
    Manifest,
    Preprocessing,
    SegmentationDecoding,
    ServingDefaults,
    TensorSpec,
)
from training import augment, card, common, data, encoder, export, metrics, ship


def evaluate(session, prep: Preprocessing, samples: list[data.Sample]) -> dict[str, float]:
    """PraNet protocol through ONNX Runtime: mean per-image Dice and IoU at the original size."""
    input_name = session.get_inputs()[0].name

    def one(sample: data.Sample) -> tuple[float, float]:
        image = data.read_image(sample.image_path)
        x = data.to_input(image, prep.size, prep.mean, prep.std)[None]
        logits = session.run(None, {input_name: x})[0][0, 0]
        h0, w0 = image.shape[:2]
        prob = torch.sigmoid(torch.from_numpy(logits))[None, None]
        prob = F.interpolate(prob, size=(h0, w0), mode="bilinear", align_corners=False)[0, 0]
        return metrics.dice_iou(prob.numpy() >= 0.5, data.read_mask(sample.mask_path))

    scores = np.asarray(data.map_threads(one, samples, workers=2))
    return {"dice": float(scores[:, 0].mean()), "iou": float(scores[:, 1].mean())}


def export_and_report(cfg, model, tensors, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    version_dir = Path(cfg.out_dir) / cfg.name / str(cfg.version)
    shipped = ship.shipped_manifest(version_dir)  # read once: size, test record, command chain
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD
    trainval = data.kvasir_samples(data_root / "kvasir-seg", "trainval")
    val_ids = set(data.split_train_val([s.id for s in trainval], cfg.val_fraction, cfg.seed)[1])
    splits = {"kvasir_val": [s for s in trainval if s.id in val_ids]}
    if cfg.evaluate_test:
        splits |= ship.test_splits(data_root)
    if cfg.dry_run:
        splits = {k: v[:3] for k, v in splits.items()}

    def prep_at(size: int) -> Preprocessing:
        return Preprocessing(size=(size, size), resize="stretch", mean=mean, std=std)

    def val_dice(path: Path, size: int) -> float:
        return evaluate(export.ort_session(path), prep_at(size), splits["kvasir_val"])["dice"]

    # the network is fully convolutional: the same weights serve at any multiple of 32
    chosen, trials = ship.choose_input_size(
        lambda size: model,
        cfg.serve_sizes,
        work_dir,
        ["logits"],
        val_dice,
        cfg.max_latency_ms,
        shipped,
        cfg.latency_threads,
        runs=10 if cfg.dry_run else 50,
    )
    size, onnx_path = (chosen.size, chosen.size), chosen.onnx_path
    val_x = augment.normalise(tensors["val"][0][:4].cpu(), mean, std)
    val_x = F.interpolate(val_x, size=size, mode="bilinear", align_corners=False).numpy()
    max_diff = export.parity(onnx_path, model, {"images": val_x})
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {chosen.latency_ms:.1f} ms")

    prep = prep_at(chosen.size)
    tests, recorded = ship.test_record(shipped, version_dir, cfg.evaluate_test, onnx_path)
    session = export.ort_session(onnx_path)
    results = {split: evaluate(session, prep, samples) for split, samples in splits.items()}
    for split, values in results.items():
        print(split, json.dumps(values))
    checkpoint = encoder.checkpoint(cfg.encoder)
    results = recorded | results
    manifest = Manifest(
        task="segmentation",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"EfficientNet-{cfg.encoder.capitalize()} U-Net polyp segmenter for colonoscopy "
            "frames (research and education only). Sigmoid of `logits` >= 0.5 is polyp; resize "
            "the map back to the frame size."
        ),
        inputs=[TensorSpec(name="images", dtype="float32", shape=[None, 3, *size])],
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, 1, *size])],
        labels=["polyp"],
        preprocessing=prep,
        segmentation=SegmentationDecoding(activation="sigmoid", threshold=0.5),
        defaults=ServingDefaults(max_batch_size=8),
        provenance=common.provenance(
            dataset="Kvasir-SEG (Jha et al., MMM 2020)",
            split="train: Kvasir-SEG minus the 100 PraNet test ids (10% of it held out for early "
            "stopping and the input size); test: kvasir_test_100, clinicdb_test_62 (never "
            "trained on)",
            command=ship.command_chain(shipped, train_command),
            pretrained=checkpoint.citation(),
            test_evaluations=tests,
        ),
        metrics=results,
    )
    export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir, "Segmenter: Dice + BCE loss")
    card.write_card(
        version_dir.parent / "README.md",
        manifest,
        summary="Binary polyp segmentation of colonoscopy frames: a U-Net decoder on an "
        "ImageNet-pretrained EfficientNet-Lite encoder.",
        intended_use=(
            "Research and teaching demos of polyp segmentation served by polypserve. Not a "
            "medical device; not validated for clinical use; never a substitute for an endoscopist."
        ),
        data=f"Trained on Kvasir-SEG. {card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}",
        anchors={
            "kvasir_test_100/dice": "U-Net 0.818, PraNet 0.898, Polyp-PVT 0.917; target ≥ 0.88",
            "clinicdb_test_62/dice": "PraNet 0.899 (trained on ClinicDB); target ≥ 0.80",
            "kvasir_test_100/iou": "U-Net 0.746, PraNet 0.840",
        },
        architecture=(
            f"Encoder: {checkpoint.citation()}; its "
            f"stride 4, 8, 16 and 32 levels feed a U-Net decoder (widths {list(cfg.decoder)}, "
            f"conv-BN-ReLU blocks, dropout {cfg.dropout} on the deepest level), logits "
            "upsampled to the input in the graph. Fine-tuned whole with AdamW "
            f"(lr {cfg.lr:g}, cosine schedule), Dice + BCE loss, flips/scale/rotation/colour "
            f"augmentation at {cfg.size}x{cfg.size}, early stopping on the validation loss. "
            "Frames are stretched to the input square, x/255 normalised with mean and std "
            f"{list(mean)} / {list(std)} (the checkpoint's own)."
        ),
        headline=("kvasir_val", "dice"),
        selection=ship.size_table(trials, "Dice", chosen, cfg.max_latency_ms, cfg.latency_threads),
        tests=ship.test_note(tests, ["kvasir_test_100", "clinicdb_test_62"]),
        extra=export.export_note(max_diff, chosen.latency_ms, cfg.latency_threads),
        limits=[
            "Trained on 810 images of one data set; other endoscopes are measured by the "
            "CVC-ClinicDB row only.",
            "Kvasir-SEG has no polyp-free frames: false positives on normal mucosa are untested.",
            "Images are stretched to a square: very elongated frames lose aspect.",
        ],
    )
    print(f"wrote {version_dir}")
    return results
