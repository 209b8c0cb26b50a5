from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image

from training import data


def test_kvasir_splits_are_disjoint_and_boxes_read(data_root: Path) -> None:
    root = data_root / "kvasir-seg"
    trainval = data.kvasir_samples(root, "trainval")
    test = data.kvasir_samples(root, "test")
    assert len(trainval) == 12 and len(test) == 4
    assert not {s.id for s in trainval} & {s.id for s in test}
    sample = trainval[0]
    assert sample.boxes is not None and sample.boxes.shape == (1, 4)
    mask = data.read_mask(sample.mask_path)
    # the json box and the mask's connected component agree
    np.testing.assert_allclose(data.boxes_from_mask(mask)[0], sample.boxes[0], atol=1)


def test_split_train_val_is_deterministic() -> None:
    ids = [f"x{i}" for i in range(50)]
    a = data.split_train_val(ids, 0.2, seed=3)
    b = data.split_train_val(list(reversed(ids)), 0.2, seed=3)
    assert a == b and len(a[1]) == 10 and not set(a[0]) & set(a[1])


def test_split_train_val_holds_out_each_stratum_in_proportion() -> None:
    ids = [f"x{i:02d}" for i in range(100)]
    rare = [i % 10 == 0 for i in range(100)]  # 10 rare ids
    train, val = data.split_train_val(ids, 0.2, seed=3, strata=rare)
    assert len(val) == 20 and sum(int(v[1:]) % 10 == 0 for v in val) == 2
    assert sorted(train + val) == ids
    assert (train, val) == data.split_train_val(ids, 0.2, seed=3, strata=rare)


def test_clinicdb_reads_test_split_in_numeric_order(data_root: Path) -> None:
    samples = data.clinicdb_samples(data_root / "cvc-clinicdb", "test")
    assert [s.id for s in samples] == ["2", "4", "6"]
    assert data.read_mask(samples[0].mask_path).dtype == bool
    assert len(data.clinicdb_samples(data_root / "cvc-clinicdb", "all")) == 6


def test_boxes_from_mask_finds_each_component() -> None:
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:7] = True
    mask[10:18, 20:29] = True
    boxes = data.boxes_from_mask(mask)
    assert sorted(boxes.tolist()) == [[3, 2, 7, 5], [20, 10, 29, 18]]
    assert data.boxes_from_mask(np.zeros((4, 4), bool)).shape == (0, 4)


def test_yolo_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (50, 50)).save(tmp_path / "images" / "b.png")
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.1 0.1\n")
    samples = data.yolo_samples(tmp_path)
    assert [s.id for s in samples] == ["a", "b"]
    np.testing.assert_allclose(samples[0].boxes[0], [80, 30, 120, 70])
    np.testing.assert_allclose(samples[0].boxes[1], [10, 5, 30, 15])
    assert samples[1].boxes.shape == (0, 4)  # no label file: a negative image


def test_imagefolder(tmp_path: Path) -> None:
    for name, count in (("cat", 2), ("dog", 3)):
        (tmp_path / name).mkdir()
        for i in range(count):
            Image.new("RGB", (8, 8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    samples, classes = data.imagefolder_samples(tmp_path)
    assert classes == ["cat", "dog"]
    assert [s.label for s in samples] == [0, 0, 1, 1, 1]


def test_read_series_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("date,value\n2020-01,1.5\n2020-02,2\n2020-03,-3\n")
    np.testing.assert_allclose(data.read_series_csv(path), [1.5, 2.0, -3.0])
    np.testing.assert_allclose(data.read_series_csv(path, "value"), [1.5, 2.0, -3.0])


def test_load_resized_scales_boxes(data_root: Path) -> None:
    samples = data.kvasir_samples(data_root / "kvasir-seg", "trainval")[:3]
    images, masks, boxes = data.load_resized(samples, (32, 48))
    assert images.shape == (3, 32, 48, 3) and images.dtype == np.uint8
    assert masks.shape == (3, 32, 48) and set(np.unique(masks)) <= {0, 1}
    for sample, image_boxes in zip(samples, boxes, strict=True):
        h0, w0 = data.read_image(sample.image_path).shape[:2]
        scale = np.asarray([48 / w0, 32 / h0] * 2)
        np.testing.assert_allclose(image_boxes, sample.boxes * scale, rtol=1e-5)


def test_to_input_matches_manifest_preprocessing() -> None:
    image = np.full((10, 20, 3), 255, np.uint8)
    x = data.to_input(image, (4, 6), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert x.shape == (3, 4, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x, 2.0)


def test_a_config_switch_reads_as_its_flag_says() -> None:
    from training import common

    @dataclasses.dataclass(frozen=True)
    class Switches:
        base: bool = True
        export: bool = True

    got = common.parse_config(Switches(), "", ["--no-base"])
    assert (got.base, got.export) == (False, True)

    @dataclasses.dataclass(frozen=True)
    class Negated:
        no_base: bool = False  # --no-base would set it False: refused

    with pytest.raises(ValueError, match="no_base"):
        common.parse_config(Negated(), "", ["--no-base"])


@dataclasses.dataclass(frozen=True)
class _Choice:
    fit: Literal["conditional", "exact"] = "exact"


def test_a_literal_config_field_takes_only_its_values(capsys: pytest.CaptureFixture) -> None:
    from training import common

    assert common.parse_config(_Choice(), "", ["--fit", "conditional"]).fit == "conditional"
    with pytest.raises(SystemExit):
        common.parse_config(_Choice(), "", ["--fit", "exakt"])
    assert "invalid choice: 'exakt'" in capsys.readouterr().err
