"""Synthetic corpus: deterministic, valid, answers match what was drawn, splits disjoint."""
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import ConfigError, config_hash, load_config, to_dict
from engine.data.sample import validate_sample
from engine.data.shards import iter_samples
from engine.synth import FAMILIES, SynthConfig, build_corpus, generate_split, make_sample
from engine.synth.draw import BACKGROUND, PALETTE
from engine.synth.preview import contact_sheet
from engine.verifiers import verify

REPO = Path(__file__).resolve().parents[3]
SMALL = SynthConfig(train_per_family=12, val_per_family=4, test_per_family=6)


def _pixels(sample):
    return np.asarray(Image.open(io.BytesIO(sample.images[0].bytes)).convert("RGB"))


def test_deterministic_and_regenerable_alone():
    a, b = generate_split(SMALL, "train"), generate_split(SMALL, "train")
    assert [s.to_row() for s in a] == [s.to_row() for s in b]
    alone = make_sample(SMALL, "chart", "train", 7)
    assert alone.to_row() == next(s for s in a if s.id == "synth-chart-train-000007").to_row()
    other_seed = generate_split(SynthConfig(seed=1, train_per_family=12), "train")
    assert [s.images[0].bytes for s in other_seed] != [s.images[0].bytes for s in a]


def test_every_sample_valid_and_self_verifying():
    for s in generate_split(SMALL, "test"):
        validate_sample(s)
        assert s.messages[0].content.startswith("<image>") and s.messages[0].content.endswith(SMALL.prompt_suffix)
        assert s.meta["level"] in (1, 2, 3) and s.meta["family"] == s.task
        # the ground truth, written the way the model is trained to answer, passes its own verifier
        assert verify(s.verifier, f"\\boxed{{{s.answer}}}", s.answer, s.verifier_params).passed, s.id


def test_counting_answer_matches_drawn_objects():
    for s in (x for x in generate_split(SMALL, "train") if x.task == "counting"):
        objs = s.meta["objects"]
        asked = re.search(r"How many (\w+ )?shapes are there\?", s.question).group(1)  # a colour or None
        expected = sum(o["color"] == asked.strip() for o in objs) if asked else len(objs)
        assert int(s.answer) == expected


def test_grounding_box_covers_target_pixels():
    for s in (x for x in generate_split(SMALL, "train") if x.task == "grounding"):
        x1, y1, x2, y2 = json.loads(s.answer)
        assert 0 <= x1 < x2 <= SMALL.image_size and 0 <= y1 < y2 <= SMALL.image_size
        px = _pixels(s)
        target = np.array(PALETTE[s.meta["target"]["color"]])
        crop = px[y1:y2, x1:x2]
        inside = (np.abs(crop.astype(int) - target).sum(-1) < 10).sum()
        assert inside > 0.3 * (x2 - x1) * (y2 - y1), s.id  # the box is mostly the target's colour


def test_color_answer_is_the_drawn_colour():
    for s in (x for x in generate_split(SMALL, "train") if x.task == "color" and x.meta["level"] < 3):
        px = _pixels(s)
        assert (np.abs(px.astype(int) - np.array(PALETTE[s.answer])).sum(-1) < 10).sum() > 100


def test_ocr_and_chart_facts_agree_with_answers():
    for s in generate_split(SMALL, "train"):
        if s.task == "ocr":
            x1, y1, x2, y2 = s.meta["box"]
            assert s.answer == s.meta["text"] and s.answer.isalnum() and s.answer == s.answer.upper()
            assert 0 <= x1 < x2 <= SMALL.image_size and 0 <= y1 < y2 <= SMALL.image_size  # the text is fully visible
        if s.task == "chart" and "value of bar" in s.question:
            letter = s.question.split("bar ")[1][0]
            assert int(s.answer) == s.meta["values"][letter]
        if s.task == "chart" and "tallest" in s.question:
            values = s.meta["values"]
            assert values[s.answer] == max(values.values()) and list(values.values()).count(max(values.values())) == 1
        if s.task == "chart" and "+" in s.question:
            a, b = re.fullmatch(r"What is ([A-D]) \+ ([A-D])\?", s.question.split(SMALL.prompt_suffix)[0][len("<image>"):]).groups()
            assert a != b and int(s.answer) == s.meta["values"][a] + s.meta["values"][b]


def test_spatial_answer_matches_drawn_boxes():
    relations = {"left of": "left", "right of": "right", "above": "above", "below": "below"}
    for s in (x for x in generate_split(SMALL, "train") if x.task == "spatial"):
        a, b = s.meta["subject"], s.meta["reference"]
        dx = (a["box"][0] + a["box"][2] - b["box"][0] - b["box"][2]) / 2
        dy = (a["box"][1] + a["box"][3] - b["box"][1] - b["box"][3]) / 2
        truth = {"left": dx < 0, "right": dx > 0, "above": dy < 0, "below": dy > 0}
        assert truth[s.meta["relation"]]
        assert f"{a['color']} {a['shape']}" in s.question and f"{b['color']} {b['shape']}" in s.question
        if s.answer in ("yes", "no"):
            asked = next(v for k, v in relations.items() if f" {k} the " in s.question)
            assert (s.answer == "yes") == (asked == s.meta["relation"])
            assert s.answer == "yes" or not truth[asked]  # a "no" is literally false, not just secondary
        else:
            assert s.answer == s.meta["relation"]


def test_color_shape_question_names_a_unique_object():
    for s in (x for x in generate_split(SMALL, "train") if x.task == "color"):
        objs = s.meta["objects"]
        if s.meta["level"] < 3:  # a global property: every object has the asked colour
            assert {o["color"] for o in objs} == {s.answer}
            continue
        assert len({o["color"] for o in objs}) == len(objs) and len({o["shape"] for o in objs}) == len(objs)
        target = s.meta["target"]
        assert s.answer in (target["color"], target["shape"])


def test_splits_disjoint_and_no_leaked_duplicates():
    seen = {}
    for split in ("train", "val", "test"):
        for s in generate_split(SMALL, split):
            key = (s.question, s.answer, hashlib.sha256(s.images[0].bytes).hexdigest())
            assert seen.setdefault(key, split) == split, f"{s.id} duplicates a {seen[key]} sample"


BAD_CONFIGS = [
    {"families": ["nope"]},
    {"families": []},
    {"families": ["color", "color"]},
    {"train_per_family": -1},
    {"test_per_family": -3},
    {"levels": [4]},
    {"levels": []},
    {"levels": [1, 1]},
    {"image_size": 20},
    {"rows_per_shard": 0},
]


@pytest.mark.parametrize("override", BAD_CONFIGS)
def test_config_validation(override):
    with pytest.raises(ConfigError):
        SynthConfig(**override).validate()
    with pytest.raises(ConfigError):  # the same errors through the YAML loader
        load_config(SynthConfig, overrides=[f"{k}={json.dumps(v)}" for k, v in override.items()])


def test_default_yaml_matches_dataclass_defaults():
    assert load_config(SynthConfig, REPO / "configs" / "synth" / "default.yaml") == SynthConfig()
    with pytest.raises(ConfigError):
        load_config(SynthConfig, overrides=["famillies=[color]"])  # a typo is an error, not a default


def test_fixed_level_and_family_subset():
    cfg = SynthConfig(families=["ocr", "spatial"], levels=[3], train_per_family=5, val_per_family=0, test_per_family=0)
    samples = generate_split(cfg, "train")
    assert [s.task for s in samples] == ["ocr"] * 5 + ["spatial"] * 5
    assert {s.meta["level"] for s in samples} == {3}
    assert generate_split(cfg, "val") == []


def test_build_corpus_writes_shards_and_manifest(tmp_path):
    cfg = SynthConfig(families=["color", "chart"], train_per_family=5, val_per_family=2, test_per_family=3, rows_per_shard=4)
    manifest = build_corpus(cfg, tmp_path)
    assert manifest["counts"]["train"]["per_family"] == {"color": 5, "chart": 5}
    assert sum(manifest["counts"]["test"]["per_level"].values()) == 6
    assert manifest["config_hash"] and manifest["gradus_version"]
    assert len(list((tmp_path / "train").glob("part-*.parquet"))) == 3  # 10 rows, 4 per shard
    assert [s.id for s in iter_samples(tmp_path / "val")] == [f"synth-{f}-val-{i:06d}" for f in ("color", "chart") for i in range(2)]
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert manifest["config"] == to_dict(cfg) and manifest["config_hash"] == config_hash(cfg)


def test_build_corpus_is_byte_identical(tmp_path):
    cfg = SynthConfig(train_per_family=3, val_per_family=1, test_per_family=2, rows_per_shard=5)
    build_corpus(cfg, tmp_path / "a")
    build_corpus(cfg, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.parquet"))
    assert len(files) == 4 + 2 + 3  # 18, 6 and 12 rows at 5 rows per shard
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_contact_sheet(tmp_path):
    samples = [make_sample(SMALL, family, "val", 0) for family in FAMILIES]
    path = contact_sheet(samples, tmp_path / "sheet.png", columns=3)
    with Image.open(path) as img:
        assert img.width > 3 * SMALL.image_size and img.height > 2 * SMALL.image_size


def test_all_families_render():
    cfg = SynthConfig(train_per_family=30, val_per_family=0, test_per_family=0)
    tasks = {s.task for s in generate_split(cfg, "train")}
    assert tasks == set(FAMILIES)
    assert BACKGROUND not in PALETTE.values()
