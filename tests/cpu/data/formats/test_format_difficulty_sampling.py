"""DifficultySampling JSONL -> Sample."""
from engine.data.formats import read_records

from format_fixtures import write_jsonl


def test_records_map_to_samples(tmp_path, image_root, policy):
    path = write_jsonl(
        tmp_path / "VPT_0.1-0.4.jsonl",
        [
            {"id": 17, "ability": "cv_detection", "prompt": "Locate the dog. Output [{'bbox_2d': [x1,y1,x2,y2]}].",
             "ground_truth": "<answer>[{'bbox_2d': [1, 2, 10, 12], 'label': 'dog'}]</answer>", "image_paths": ["a.png"],
             "mask_ratio_acc": [1.0, 0.8, 0.2]},
            {"id": "ocr-3", "ability": "ocr", "prompt": "<image>\nRead the text.", "ground_truth": "HELLO", "image_paths": ["sub/b.png"]},
            {"id": "cnt-9", "ability": "counting", "prompt": "Compare them.", "ground_truth": "\\boxed{2}", "image_paths": ["a.png", "sub/b.png"]},
        ],
    )
    samples, quarantine = read_records("difficulty_sampling", path, policy)
    assert quarantine == []
    det, ocr, cnt = samples

    assert det.id == "17"  # numeric ids become text
    assert det.messages[0].content == "<image>\nLocate the dog. Output [{'bbox_2d': [x1,y1,x2,y2]}]."
    assert det.answer == "[{'bbox_2d': [1, 2, 10, 12], 'label': 'dog'}]"
    assert (det.task, det.verifier, det.domain, det.source) == ("cv_detection", "detection", "cv_detection", "difficulty_sampling")
    assert det.meta["difficulty_sampling"] == {
        "mask_ratio_acc": [1.0, 0.8, 0.2],
        "ground_truth_wrapper": {"prefix": "<answer>", "suffix": "</answer>"},
    }
    assert det.images[0].path == "a.png" and det.images[0].bytes == (image_root / "a.png").read_bytes()

    assert ocr.messages[0].content == "<image>\nRead the text."  # already has its placeholder
    assert (ocr.answer, ocr.verifier, ocr.meta) == ("HELLO", "ocr", {})

    assert cnt.messages[0].content.startswith("<image><image>\n")  # one per image
    assert (cnt.answer, cnt.verifier) == ("2", "count")
