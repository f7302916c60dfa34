"""``iadet voc-eval`` and the devkit file readers: results, formats, and one-line errors."""

from __future__ import annotations

import pytest

from iadet.cli import main
from iadet.data.records import VOC_CLASSES
from iadet.errors import DataError
from iadet.evaluation.voc import evaluate_voc
from iadet.evaluation.voc_files import read_image_set, read_voc_annotation, read_voc_detections

# Two images. "a": a dog and a (difficult) cat; "b": a dog. 1-based XML boxes.
ANNOTATIONS = {
    "a": [
        {"name": "dog", "box": (1, 1, 10, 10)},
        {"name": "cat", "box": (21, 21, 30, 30), "difficult": 1},
    ],
    "b": [{"name": "dog", "box": (5, 5, 24, 24), "difficult": None}],  # no <difficult> tag: 0
}


def test_cli_prints_a_table_then_json_last(voc_dir, run_voc_eval):
    root = voc_dir(
        ANNOTATIONS,
        {
            # dog: a hit on "a" (0.9), a miss (0.8), a hit on "b" (0.7): recall .5, .5, 1
            "dog": ["a 0.9 1 1 10 10", "a 0.8 40 40 50 50", "b 0.7 5 5 24 24"],
            "cat": ["a 0.6 21 21 30 30"],  # only a difficult cat: npos 0
        },
    )
    code, out, err, payload = run_voc_eval(root, "--classes", "dog,cat", "--metric", "voc")
    assert code == 0
    assert set(payload) == {"mAP", "ap"}
    assert payload["ap"]["dog"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert payload["ap"]["cat"] == 0.0
    assert payload["mAP"] == pytest.approx((0.5 + 1 / 3) / 2)
    table = out.strip().splitlines()[:-1]
    assert table[0].split() == ["class", "npos", "dets", "AP"]
    assert table[1].split() == ["dog", "2", "3", "83.3"]
    assert table[-1].split() == ["mAP", "41.7"]
    assert "iadet: warning: class 'cat' has no non-difficult ground truth" in err


def test_voc07_is_the_default_metric(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": ["a 0.9 1 1 10 10", "a 0.8 40 40 50 50", "b 0.7 5 5 24 24"]})
    code, _, _, payload = run_voc_eval(root, "--classes", "dog")
    # recall .5 at precision 1 (t = 0..0.5, six points), then 1 at 2/3 (five points)
    assert code == 0 and payload["ap"]["dog"] == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_iou_option(voc_dir, run_voc_eval):
    # (1,1,10,5) overlaps (1,1,10,10) by exactly 0.5: no match at 0.5, a match at 0.45.
    root = voc_dir(ANNOTATIONS, {"dog": ["a 0.9 1 1 10 5"]})
    assert run_voc_eval(root, "--classes", "dog")[3]["ap"]["dog"] == 0.0
    assert run_voc_eval(root, "--classes", "dog", "--iou", "0.45")[3]["ap"]["dog"] == pytest.approx(6 / 11)


def test_default_classes_are_the_twenty_voc_classes(voc_dir, run_voc_eval):
    root = voc_dir({"a": [{"name": "dog", "box": (1, 1, 10, 10)}]}, {"dog": ["a 1.0 1 1 10 10"]})
    code, _, err, payload = run_voc_eval(root)
    assert code == 0 and list(payload["ap"]) == list(VOC_CLASSES)
    assert payload["ap"]["dog"] == pytest.approx(1.0)
    assert payload["mAP"] == pytest.approx(1 / 20)
    assert "no detection file for class 'aeroplane'" in err  # a warning, not an error


def test_empty_and_missing_detection_files_give_ap_zero(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": [], "cat": ["", "   "]})  # empty; blank lines only
    code, _, err, payload = run_voc_eval(root, "--classes", "dog,cat,bird")
    assert code == 0 and payload["ap"] == {"dog": 0.0, "cat": 0.0, "bird": 0.0}
    assert "no detection file for class 'bird'" in err and "'dog'" not in err.split("npos")[0]


def test_float_coordinates_and_tabs(voc_dir, run_voc_eval):
    root = voc_dir(
        {"a": [{"name": "dog", "box": (1.5, 1.5, 10.5, 10.5)}]}, {"dog": ["a\t0.5\t1.5 1.5 10.5 10.5"]}
    )
    assert run_voc_eval(root, "--classes", "dog")[3]["ap"]["dog"] == pytest.approx(1.0)


@pytest.mark.filterwarnings("ignore::iadet.evaluation.voc.EvaluationWarning")
def test_file_path_equals_in_memory_path(voc_dir, run_voc_eval, as_ground_truth):
    lines = [
        "a 0.9 1 1 10 10",
        "b 0.95 40 40 50 50",
        "b 0.85 6 6 24 24",
        "a 0.8 2 1 11 10",
        "b 0.4 21 21 30 30",
    ]
    root = voc_dir(ANNOTATIONS, {"dog": lines, "cat": ["a 0.7 21 21 30 30", "b 0.6 5 5 24 24"]})
    classes = ("dog", "cat")
    predictions = {}
    for label, name in enumerate(classes, start=1):
        for line in (root / "det" / f"comp4_det_test_{name}.txt").read_text().splitlines():
            image_id, score, *box = line.split()
            entry = predictions.setdefault(image_id, {"boxes": [], "labels": [], "scores": []})
            entry["boxes"].append([float(v) - 1 for v in box])
            entry["labels"].append(label)
            entry["scores"].append(float(score))
    for metric in ("voc07", "voc"):
        _, _, _, payload = run_voc_eval(root, "--classes", ",".join(classes), "--metric", metric)
        in_memory = evaluate_voc(as_ground_truth(ANNOTATIONS, classes), predictions, classes, metric=metric)
        assert payload == in_memory.to_json()
        assert 0 < payload["ap"]["dog"] < 1


# --- readers ------------------------------------------------------------------------------


def test_read_voc_annotation(tmp_path):
    path = tmp_path / "x.xml"
    path.write_text(
        "<annotation><object><name> dog </name><bndbox><xmin>1</xmin><ymin>2.5</ymin><xmax>30</xmax>"
        "<ymax>40</ymax></bndbox></object><object><name>cat</name><difficult>1</difficult><bndbox>"
        "<xmin>5</xmin><ymin>6</ymin><xmax>7</xmax><ymax>8</ymax></bndbox></object></annotation>"
    )
    ann = read_voc_annotation(path)
    assert ann.names == ["dog", "cat"]
    assert ann.boxes.tolist() == [[1.0, 2.5, 30.0, 40.0], [5.0, 6.0, 7.0, 8.0]]
    assert ann.difficult.tolist() == [False, True]


def test_read_image_set_takes_the_first_word_and_skips_blank_lines(tmp_path):
    path = tmp_path / "set.txt"
    path.write_text("000001\n\n000002  1\n000003 -1\n")
    assert read_image_set(path) == ["000001", "000002", "000003"]


def test_read_voc_detections(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("b 0.5 1 2 3 4\n\na 0.25 5 6 7 8.5\n")
    image, scores, boxes = read_voc_detections(path, {"a": 0, "b": 1})
    assert image.tolist() == [1, 0] and scores.tolist() == [0.5, 0.25]
    assert boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8.5]]


# --- bad input: one line naming the culprit, exit status 2 ------------------------------------


def assert_error(code, out, err, *fragments):
    assert code == 2, (out, err)
    assert err.startswith("iadet: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_missing_annotation_names_the_id_and_path(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    (root / "test.txt").write_text("a\nzz9\n")
    code, out, err, _ = run_voc_eval(root, "--classes", "dog")
    assert_error(code, out, err, "'zz9'", str(root / "Annotations" / "zz9.xml"))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("a 0.9 1 1 10", "expected 'image_id score xmin ymin xmax ymax'"),
        ("a 0.9 1 1 10 10 7", "expected"),
        ("a high 1 1 10 10", "finite numbers"),
        ("a 0.9 1 1 10 ten", "finite numbers"),
        ("a nan 1 1 10 10", "finite numbers"),
        ("q 0.9 1 1 10 10", "image 'q' is not in the image set"),
    ],
)
def test_malformed_detection_line_names_file_and_line(voc_dir, run_voc_eval, line, fragment):
    root = voc_dir(ANNOTATIONS, {"dog": ["a 0.5 1 1 10 10", "", line]})
    code, out, err, _ = run_voc_eval(root, "--classes", "dog")
    assert_error(code, out, err, "comp4_det_test_dog.txt:3:", fragment)


@pytest.mark.parametrize(
    ("classes", "fragment"),
    [("", "--classes is empty"), (" , ", "--classes is empty"), ("dog,,cat", "empty class name"),
     ("dog,cat,dog", "'dog' twice")],
)  # fmt: skip
def test_bad_class_list(voc_dir, run_voc_eval, classes, fragment):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    code, out, err, _ = run_voc_eval(root, "--classes", classes)
    assert_error(code, out, err, fragment)


def test_empty_image_set(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    (root / "test.txt").write_text("\n  \n")
    code, out, err, _ = run_voc_eval(root, "--classes", "dog")
    assert_error(code, out, err, "lists no images", "test.txt")


def test_missing_image_set_and_duplicate_ids(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    (root / "test.txt").write_text("a\nb\na\n")
    assert_error(*run_voc_eval(root, "--classes", "dog")[:3], "test.txt:3:", "'a' is listed twice")
    (root / "test.txt").unlink()
    assert_error(*run_voc_eval(root, "--classes", "dog")[:3], "image set file not found")


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<annotation><object><name>dog</name>", "cannot parse annotation"),
        ("<annotation><object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>x</xmax>"
         "<ymax>3</ymax></bndbox></object></annotation>", "object 1 ('dog') has a bad <xmax>"),
        ("<annotation><object><bndbox/></object></annotation>", "object 1 has no <name>"),
        ("<annotation><object><name>dog</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>2</xmax>"
         "<ymax>3</ymax></bndbox></object></annotation>", "has a bad <xmin>: 'nan'"),
        ("<annotation><object><name>dog</name></object></annotation>", "has no <bndbox>"),
        ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "boom">]><annotation>&e;</annotation>', "unsafe XML"),
    ],
)  # fmt: skip
def test_broken_xml_names_the_file(voc_dir, run_voc_eval, xml, fragment):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    (root / "Annotations" / "b.xml").write_text(xml)
    code, out, err, _ = run_voc_eval(root, "--classes", "dog")
    assert_error(code, out, err, str(root / "Annotations" / "b.xml"), fragment)


def test_detections_pattern_needs_braces(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    code, out, err, _ = run_voc_eval(root, "--classes", "dog", detections=str(root / "det" / "all.txt"))
    assert_error(code, out, err, "has no '{}'")


def test_bad_iou_is_an_error(voc_dir, run_voc_eval):
    root = voc_dir(ANNOTATIONS, {"dog": []})
    assert_error(*run_voc_eval(root, "--classes", "dog", "--iou", "1.5")[:3], "IoU threshold 1.5")


def test_help_describes_the_format(capsys):
    with pytest.raises(SystemExit) as info:
        main(["voc-eval", "--help"])
    assert info.value.code == 0
    assert "image_id score xmin ymin xmax ymax" in capsys.readouterr().out


def test_reader_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="cannot read detection file"):
        read_voc_detections(tmp_path / "none.txt", {})
