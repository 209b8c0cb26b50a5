"""Shipping a trained detector: its input size chosen on validation, the ONNX graph checked,
the splits scored (the test splits only with ``--evaluate-test``), and the manifest and the
whole card written; a smoothing study's choice becomes the version's stream defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from service.repository.manifest import (
    DetectionDecoding,
    Manifest,
    Preprocessing,
    ServingDefaults,
    StreamDefaults,
    TensorSpec,
)
from training import augment, card, common, encoder, export, ship
from training.detection_eval import evaluate, small_or_several
from training.detector import STRIDES, Detector

# The first version whose validation split is stratified by hard frames (``small_or_several``);
# older versions' validation figures are on a random split.
STRATIFIED_SINCE = 2


def stream_defaults(path: str) -> tuple[StreamDefaults, str]:
    """The stream defaults a smoothing study chose (none without one), and the card's note with
    the study's held-out figures."""
    if not path:
        return StreamDefaults(), ""
    study = json.loads(Path(path).read_text())
    chosen = {k: v for k, v in study["chosen"].items() if k in StreamDefaults.model_fields}
    rows = "\n".join(
        f"| {kind} | {r['per_frame_recall']} | {r['false_positives_per_min']} | "
        f"{r['toggles_per_min']} | {r['polyps_seen']}/{r['polyps']} | "
        f"{r['frames_to_first_display']} |"
        for kind, r in study["held_out_on_video"].items()
    )
    note = (
        "\n\nStream defaults (the tracker's smoothing for this version, which a session's query "
        f"overrides): {json.dumps(chosen)}, chosen on CVC-ClinicDB sequences 1-14 by "
        "`python -m tests.perf.smoothing` (the fewest false positives plus on-off toggles a "
        "minute among the settings that find every polyp the raw output finds and keep 90 % of "
        "its per-frame recall). Held-out sequences 15-29, each made into an MP4 and run through "
        "`polypserve analyze` (`defaults`: the tracker's own):\n\n"
        "| held-out | per-frame recall | false positives / min | on-off toggles / min | "
        "polyps seen | frames to first display |\n|---|---|---|---|---|---|\n" + rows
    )
    return StreamDefaults(**chosen), note


def export_and_report(cfg, model, tensors, trainval, val_ids, history, train_command) -> dict:
    data_root, work_dir = Path(cfg.data_root), Path(cfg.work_dir)
    version_dir = Path(cfg.out_dir) / cfg.name / str(cfg.version)
    shipped = ship.shipped_manifest(version_dir)  # read once: size, test record, command chain
    mean, std = encoder.LITE_MEAN, encoder.LITE_STD
    splits = {"val": [s for s in trainval if s.id in set(val_ids)]}
    hard = small_or_several([s.boxes for s in splits["val"]])
    if hard.any():  # the part of validation that looks like the test splits' misses
        splits["val_hard"] = [s for s, h in zip(splits["val"], hard, strict=True) if h]
    if cfg.evaluate_test and not cfg.yolo_root:
        splits |= ship.test_splits(data_root)
    if cfg.dry_run:
        splits = {k: v[:3] for k, v in splits.items()}

    def prep_at(size: int) -> Preprocessing:
        return Preprocessing(size=(size, size), resize="stretch", mean=mean, std=std)

    def at_size(size: int) -> Detector:
        """The trained weights on the grid of another input size (the grid is not learnt)."""
        resized = Detector(size, cfg.encoder, cfg.neck, cfg.dropout, pretrained=False)
        resized.load_state_dict(model.state_dict())
        return resized.eval()

    def val_ap(path: Path, size: int) -> float:
        session = export.ort_session(path)
        return evaluate(
            session, prep_at(size), splits["val"], cfg.score_threshold, cfg.iou_threshold
        )["ap50"]

    chosen, trials = ship.choose_input_size(
        at_size,
        cfg.serve_sizes,
        work_dir,
        ["boxes", "scores"],
        val_ap,
        cfg.max_latency_ms,
        shipped,
        cfg.latency_threads,
        runs=10 if cfg.dry_run else 100,
    )
    size, onnx_path, served = (chosen.size, chosen.size), chosen.onnx_path, at_size(chosen.size)
    val_x = augment.normalise(tensors["val"][0][:4].cpu(), mean, std)
    val_x = torch.nn.functional.interpolate(val_x, size=size, mode="bilinear").numpy()
    max_diff = export.parity(onnx_path, served, {"images": val_x})
    print(f"ONNX parity max |diff| {max_diff:.2e}; latency {chosen.latency_ms:.1f} ms")

    prep = prep_at(chosen.size)
    tests, recorded = ship.test_record(shipped, version_dir, cfg.evaluate_test, onnx_path)
    session = export.ort_session(onnx_path)
    results = {
        split: evaluate(session, prep, samples, cfg.score_threshold, cfg.iou_threshold)
        for split, samples in splits.items()
    }
    for split, values in results.items():
        print(split, json.dumps(values))
    n_anchors = int(served.centres.shape[0])
    dataset = "YOLO folder " + cfg.yolo_root if cfg.yolo_root else "Kvasir-SEG (Jha et al., 2020)"
    checkpoint = encoder.checkpoint(cfg.encoder)
    results = recorded | results
    stream, stream_note = stream_defaults(cfg.stream_defaults)
    manifest = Manifest(
        task="detection",
        name=cfg.name,
        version=cfg.version,
        description=(
            f"EfficientNet-{cfg.encoder.capitalize()} anchor-free single-stage polyp detector "
            "for real-time colonoscopy streams (research and education only). The graph decodes "
            "its grid: boxes are xyxy in network-input pixels of the stretched frame, scores "
            "already sigmoided; threshold, NMS and map back."
        ),
        inputs=[TensorSpec(name="images", dtype="float32", shape=[None, 3, *size])],
        outputs=[
            TensorSpec(name="boxes", dtype="float32", shape=[None, n_anchors, 4]),
            TensorSpec(name="scores", dtype="float32", shape=[None, n_anchors, 1]),
        ],
        labels=["polyp"],
        preprocessing=prep,
        detection=DetectionDecoding(),
        defaults=ServingDefaults(
            score_threshold=cfg.score_threshold,
            iou_threshold=cfg.iou_threshold,
            max_detections=100,
            stream=stream,
        ),
        provenance=common.provenance(
            dataset=dataset,
            split=f"train: Kvasir-SEG minus the 100 PraNet test ids ({cfg.val_fraction:.0%} of the "
            "frames with small or several boxes and of the rest held out for early stopping and "
            "the input size); test: kvasir_test_100 (official boxes), "
            "clinicdb_test_62 (boxes from mask connected components; never trained on)",
            command=ship.command_chain(shipped, train_command),
            pretrained=checkpoint.citation(),
            test_evaluations=tests,
        ),
        metrics=results,
    )
    export.write_model_dir(Path(cfg.out_dir), onnx_path, manifest)
    card.plot_curve(history, version_dir, "Detector: QFL + 2 GIoU loss")
    thr = cfg.score_threshold
    card.write_card(
        version_dir.parent / "README.md",
        manifest,
        summary="Real-time polyp detection in colonoscopy frames (one class, `polyp`).",
        intended_use=(
            "Research and teaching demos of computer-aided polyp detection on live colonoscopy "
            "video served by polypserve's stream. Not a medical device; not validated for "
            "clinical use; an aid that never replaces the endoscopist's inspection."
        ),
        data=f"Trained on Kvasir-SEG boxes. {card.KVASIR_TERMS}\n\n{card.CLINICDB_TERMS}",
        anchors={
            "kvasir_test_100/ap50": "YOLOv8 ~0.95; target ≥ 0.90",
            f"kvasir_test_100/recall@{thr}": "target ≥ 0.90",
            "clinicdb_test_62/ap50": "target ≥ 0.85",
        },
        architecture=(
            f"Encoder: {checkpoint.citation()}. Its "
            f"stride 8, 16 and 32 levels feed a top-down pyramid ({cfg.neck} channels) and one "
            f"head per stride {list(STRIDES)} (dropout {cfg.dropout}); FCOS-style centre "
            "sampling, quality focal loss + GIoU. Fine-tuned whole with AdamW "
            f"(lr {cfg.lr:g}, cosine schedule) at {cfg.size}x{cfg.size}, flips/scale/"
            f"translation/colour augmentation, {cfg.mosaic:.0%} of the frames as 2x2 mosaics, "
            f"early stopping on the validation loss. Input {size[0]}x{size[1]} stretched, x/255 "
            f"normalised with mean and std {list(mean)} / {list(std)}; {n_anchors} grid points. "
            "AP@0.5 is COCOeval's (pycocotools, 101-point); precision and recall are at the "
            f"serving threshold {thr} after NMS at IoU {cfg.iou_threshold}."
        ),
        headline=("val", "ap50"),
        split_since=STRATIFIED_SINCE,
        selection=ship.size_table(
            trials, "AP@0.5", chosen, cfg.max_latency_ms, cfg.latency_threads
        ),
        tests=ship.test_note(tests, ["kvasir_test_100", "clinicdb_test_62"]),
        extra=export.export_note(max_diff, chosen.latency_ms, cfg.latency_threads) + stream_note,
        limits=[
            f"Trained on {len(trainval) - len(val_ids)} still images of one data set; video "
            "frames with motion blur, water or instruments are under-represented.",
            "Kvasir-SEG has no polyp-free frames: the false-positive rate on normal mucosa is "
            "not measured by these figures.",
            "Small (under ~20 px at input scale) and flat polyps are the likeliest misses.",
        ],
    )
    print(f"wrote {version_dir}")
    return results
