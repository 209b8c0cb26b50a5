"""Model cards: ``models/<name>/README.md`` and the training-curve PNG beside it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from service.manifest import Manifest

KVASIR_TERMS = (
    "Kvasir-SEG (Simula): research and educational use only; commercial use forbidden without "
    'prior written permission. Cite: Jha D. et al., "Kvasir-SEG: A Segmented Polyp Dataset", '
    "MMM 2020, LNCS 11962, pp. 451-462, doi:10.1007/978-3-030-37734-2_37."
)
CLINICDB_TERMS = (
    "CVC-ClinicDB (Hospital Clinic / Computer Vision Center, Barcelona): research and educational "
    'use only; commercial use forbidden. Cite: Bernal J. et al., "WM-DOVA maps for accurate polyp '
    'highlighting in colonoscopy: Validation vs. saliency maps from physicians", Comput Med '
    "Imaging Graph 43 (2015) 99-111. Used here for evaluation only, never for training."
)


def plot_curve(history: Sequence[dict], path: Path, title: str) -> None:
    """Train and validation loss per epoch; the best validation epoch is marked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation loss")
    if history:
        best = min(history, key=lambda h: h["val_loss"])
        ax.axvline(best["epoch"], color="grey", linestyle=":", label=f"best epoch {best['epoch']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def metrics_table(manifest: Manifest, anchors: dict[str, str]) -> str:
    """One row per (split, metric) measured, with the published anchor where there is one."""
    lines = [
        "| split | metric | this model | published anchor / target | target met? |",
        "|---|---|---|---|---|",
    ]
    for split, values in manifest.metrics.items():
        for metric, value in values.items():
            anchor = anchors.get(f"{split}/{metric}", "")
            lines.append(
                f"| {split} | {metric} | {value:.4g} | {anchor} | {verdict(value, anchor)} |"
            )
    return "\n".join(lines)


def verdict(value: float, anchor: str) -> str:
    """'yes' / 'no, short by x' for an anchor that states ``target ≥ t`` (or ``target ≤ t``)."""
    match = re.search(r"target (≥|≤) ([0-9.]+)", anchor)
    if not match:
        return ""
    target = float(match.group(2))
    met = value >= target if match.group(1) == "≥" else value <= target
    return "yes" if met else f"**no**, off by {abs(value - target):.3f}"


def write_card(
    path: Path,
    manifest: Manifest,
    *,
    summary: str,
    intended_use: str,
    data: str,
    anchors: dict[str, str],
    architecture: str,
    limits: Sequence[str],
    extra: str = "",
) -> None:
    prov = manifest.provenance
    provenance = ""
    if prov is not None:
        provenance = (
            f"- data set: {prov.dataset}\n- split: {prov.split}\n- command: `{prov.command}`\n"
            f"- git commit: `{prov.git_commit}`\n- date: {prov.date}\n- framework: {prov.framework}"
        )
    inputs = ("Input " if len(manifest.inputs) == 1 else "Inputs ") + ", ".join(
        f"`{spec.name}` {spec.shape}" for spec in manifest.inputs
    )
    text = f"""# {manifest.name} (version {manifest.version})

{summary}

## Intended use
{intended_use}

## Model
{architecture}

{inputs}; outputs
{", ".join(f"`{o.name}` {o.shape}" for o in manifest.outputs)}. The full contract (preprocessing,
decoding, serving defaults) is in `{manifest.version}/manifest.json`.

## Data and terms
{data}

## Evaluation (held-out data only, measured by the training script)
{metrics_table(manifest, anchors)}

{extra}

![training curve](training_curve.png)

## Limits
{chr(10).join(f"- {line}" for line in limits)}

## Provenance
{provenance}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
