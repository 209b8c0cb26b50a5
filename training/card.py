"""Model cards: ``models/<name>/README.md`` and the training-curve PNG beside it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from service.repository.manifest import MANIFEST_FILE, Manifest

CURVE_FILE = "training_curve.png"  # the training curve's file in each version's folder
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


def plot_curve(history: Sequence[dict], version_dir: Path, title: str) -> None:
    """Train and validation loss per epoch, the best validation epoch marked, written beside the
    version (``CURVE_FILE``, where its card links it)."""
    path = version_dir / CURVE_FILE
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


def versions_table(model_dir: Path, headline: tuple[str, str] | None, split_since: int = 1) -> str:
    """Every version in the model's folder, newest first, from its own manifest, with its
    ``headline`` (split, metric) figure when given: how a newer version compares on the same
    validation. Versions before ``split_since`` held out another validation split, and their
    figure is marked so."""
    figure_column = f" {headline[0]} {headline[1]} |" if headline else ""
    rows = [
        f"| version | what it is |{figure_column} trained | served by default |",
        "|---|---|" + ("---|" if headline else "") + "---|---|",
    ]
    found = sorted((int(p.name) for p in model_dir.iterdir() if p.name.isdigit()), reverse=True)
    for i, version in enumerate(found):
        manifest = Manifest.read(model_dir / str(version) / MANIFEST_FILE)
        date = manifest.provenance.date if manifest.provenance else ""
        figure = ""
        if headline:
            value = manifest.metrics.get(headline[0], {}).get(headline[1])
            # a figure on another validation split does not compare with the newer ones
            other = " (on its own, other split)" if version < split_since else ""
            figure = f" {'' if value is None else f'{value:.4f}{other}'} |"
        served = "yes" if i == 0 else f"with `version={version}`"
        what = manifest.description.split(". ")[0]
        if manifest.preprocessing is not None:  # versions may differ by input size alone
            what += " (input {}x{})".format(*manifest.preprocessing.size)
        rows.append(f"| {version} | {what} |{figure} {date} | {served} |")
    return "\n".join(rows)


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
    headline: tuple[str, str] | None = None,
    split_since: int = 1,
    selection: str = "",
    tests: str = "",
    extra: str = "",
) -> None:
    """The whole card of ``manifest``'s version, from the run that made it: nothing in it is
    written by hand, so a new run rewrites it entirely. Earlier versions keep their own card
    (``<version>/README.md``, when they have one) and are listed in the versions table."""
    keep_earlier_card(path, manifest.version)
    prov = manifest.provenance
    provenance = ""
    if prov is not None:
        pretrained = f"- pretrained weights: {prov.pretrained}\n" if prov.pretrained else ""
        provenance = (
            f"- data set: {prov.dataset}\n- split: {prov.split}\n{pretrained}"
            f"- command (the whole chain, from the packaged checkpoint to the shipped file): "
            f"`{prov.command}`\n- git commit: `{prov.git_commit}`\n- date: {prov.date}\n"
            f"- framework: {prov.framework}\n- test-split scorings of this version: "
            f"{prov.test_evaluations}"
        )
    inputs = ("Input " if len(manifest.inputs) == 1 else "Inputs ") + ", ".join(
        f"`{spec.name}` {spec.shape}" for spec in manifest.inputs
    )
    version = manifest.version
    text = f"""# {manifest.name} (version {version})

{summary}

## Intended use
{intended_use}

## Model
{architecture}

{inputs}; outputs
{", ".join(f"`{o.name}` {o.shape}" for o in manifest.outputs)}. The full contract (preprocessing,
decoding, serving defaults) is in `{version}/manifest.json`.

## Versions
{versions_table(path.parent, headline, split_since)}

## Data and terms
{data}

## Evaluation (held-out data only, measured by the training script)
{metrics_table(manifest, anchors)}

{tests}

{selection}

{extra}

![training curve]({version}/{CURVE_FILE})

## Limits
{chr(10).join(f"- {line}" for line in limits)}

## Provenance
{provenance}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(re.sub(r"\n{3,}", "\n\n", text))


def keep_earlier_card(path: Path, version: int) -> None:
    """Move the card at ``path`` into its own version's folder when it is an earlier version's
    (the first export of a new version), its links made relative to that folder."""
    text = path.read_text() if path.is_file() else ""
    heading = re.match(r"# .+ \(version (\d+)\)", text)
    if heading is None or int(heading.group(1)) == version:
        return
    earlier = heading.group(1)
    text = text.replace(f"]({earlier}/", "](").replace(f"`{earlier}/", "`")
    (path.parent / earlier / "README.md").write_text(text)
    path.unlink()
