"""Curr-ReFT reformulation on real synthetic samples: variants verify, distractors never do,
yes/no is balanced, nothing crosses splits, nothing vanishes, same seed -> same variants."""
import ast
import json
import random
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.config import ConfigError, load_config, to_dict
from engine.data.response import format_response
from engine.data.sample import Message, Sample, validate_sample
from engine.data.shards import iter_samples, write_shards
from engine.shaping.reformulate import (
    ReformulateConfig,
    ReformulateReason,
    SplitLeakError,
    assert_no_split_leakage,
    find_split_leaks,
    recast_question,
    reformulate,
)
from engine.shaping.distractors import answer_passes, number_variants, seeded_rng, split_labels
from pipelines.shaping.reformulate import ReformulateJobConfig, run_reformulate
from engine.synth import FAMILIES, SynthConfig, generate_split
from engine.verifiers import VTRIUNE_IOU_SCHEDULE, RewardConfig, compute_reward, verify
from engine.verifiers.extract import normalize_text
from engine.verifiers.text import parse_choice

REPO = Path(__file__).resolve().parents[3]
SYNTH = SynthConfig(train_per_family=16, val_per_family=6, test_per_family=8)
SPLITS = ("train", "val", "test")


def _colour_sets(counting: list[Sample]) -> list[Sample]:
    """Multi-label questions on real counting images: which colours are present (labels verifier)."""
    out = []
    for s in counting:
        colours = sorted({o["color"] for o in s.meta["objects"]})
        out.append(replace(s, id=f"{s.id}-colours", task="colour_set", messages=[Message("user", "<image>Which colours do the shapes have? List them.")],
                           answer=", ".join(colours), verifier="labels", verifier_params={"threshold": 1.0}))
    return out


def _all_boxes(grounding: list[Sample]) -> list[Sample]:
    """Multi-box questions on real grounding images: every object with its label (detection verifier)."""
    out = []
    for s in grounding:
        boxes = [{"bbox_2d": o["box"], "label": f"{o['color']} {o['shape']}"} for o in s.meta["objects"]]
        out.append(replace(s, id=f"{s.id}-all", task="detection", messages=[Message("user", "<image>Find every shape. Give the boxes.")],
                           answer=json.dumps(boxes), verifier="detection", verifier_params={"threshold": 0.5, "image_size": [SYNTH.image_size] * 2}))
    return out


@pytest.fixture(scope="module")
def sources() -> list[Sample]:
    synth = [s for split in SPLITS for s in generate_split(SYNTH, split)]
    return synth + _colour_sets([s for s in synth if s.task == "counting"]) + _all_boxes([s for s in synth if s.task == "grounding"])


@pytest.fixture(scope="module")
def result(sources):
    return reformulate(sources, ReformulateConfig(seed=3))


def source_id_of_variant(v: Sample) -> str:
    return v.meta["curr_reft"]["source_id"]


def _variants(result, *stages):
    return [v for stage in stages for v in result.stages[stage]]


def source_accepts(variant: Sample, text: str) -> bool:
    """Would `text` (a judge candidate or a choice option) be a right answer to the source question?
    Judged with the source's verifier and params recorded in the variant's provenance; for
    multi-select options: is it one of the true labels?"""
    info = variant.meta["curr_reft"]
    if info["multi_select"]:
        return normalize_text(text) in {normalize_text(x) for x in split_labels(info["source_answer"])[0]}
    return answer_passes(info["source_verifier"], info["source_params"], info["source_answer"], text)


def test_every_task_gets_variants_that_verify_with_their_expected_answer(sources, result):
    tasks = {s.task for s in sources}
    assert set(FAMILIES) <= tasks and {"colour_set", "detection"} <= tasks
    for stage in ("judge", "choice"):
        assert {v.task for v in result.stages[stage]} == tasks, stage
    for v in _variants(result, "judge", "choice"):
        validate_sample(v)
        assert v.verifier == ("yesno" if v.id.endswith("#judge") else "choice")
        assert verify(v.verifier, format_response(v.answer), v.answer, v.verifier_params).passed, v.id


def test_judge_wrong_answer_fails_and_candidate_matches_the_label(result):
    for v in result.stages["judge"]:
        opposite = "no" if v.answer == "yes" else "yes"
        assert not verify("yesno", format_response(opposite), v.answer).passed
        info = v.meta["curr_reft"]
        # the shown candidate is right for the source question exactly when the label says yes
        assert source_accepts(v, info["candidate"]) == (v.answer == "yes") == info["candidate_is_truth"], v.id


def test_choice_exactly_the_correct_options_verify(result):
    for v in result.stages["choice"]:
        options = v.verifier_params["options"]
        letters = [chr(ord("A") + i) for i in range(len(options))]
        correct = set(v.meta["curr_reft"]["correct"])
        assert set(v.answer.replace(" ", "").split(",")) == correct
        for letter, text in zip(letters, options):
            # judged by the source's own verifier: only the correct options are right answers
            assert source_accepts(v, text) == (letter in correct), (v.id, text)
            if len(correct) == 1:
                assert verify("choice", format_response(letter), v.answer, v.verifier_params).passed == (letter in correct)
                if parse_choice(text) is None:  # an answer written as the option's text maps to its letter
                    assert verify("choice", format_response(text), v.answer, v.verifier_params).passed == (letter in correct)
        wrong_sets = [correct - {c} for c in correct if len(correct) > 1] + [correct | {x} for x in letters if x not in correct]
        for picked in wrong_sets:
            assert not verify("choice", format_response(", ".join(sorted(picked))), v.answer, v.verifier_params).passed


def test_boxes_wrong_options_stay_below_the_iou_bar(result):
    judged = [v for v in result.stages["judge"] if v.task == "grounding" and v.answer == "no"]
    assert judged
    for v in judged:
        r = verify("iou", format_response(v.meta["curr_reft"]["candidate"]), v.meta["curr_reft"]["source_answer"], v.meta["curr_reft"]["source_params"])
        assert r.reason == "" and r.score < 0.5
    for v in (x for x in result.stages["choice"] if x.task in ("grounding", "detection")):
        info = v.meta["curr_reft"]
        passing = [verify(info["source_verifier"], format_response(t), info["source_answer"], info["source_params"]).passed for t in v.verifier_params["options"]]
        assert sum(passing) == 1, v.id
        if v.task == "grounding":  # options are also distinct from each other (pairwise IoU under the bar)
            opts = v.verifier_params["options"]
            for i, a in enumerate(opts):
                for b in opts[i + 1 :]:
                    assert not verify("iou", format_response(a), b, info["source_params"]).passed


def test_tolerant_verifiers_never_accept_a_distractor(sources):
    loose = {"counting": {"tolerance": 1}, "ocr": {"max_distance": 0.34}, "colour_set": {"threshold": 0.5}}
    tweaked = []
    for s in sources:
        if s.task in loose:
            tweaked.append(replace(s, verifier_params={**s.verifier_params, **loose[s.task]}))
        elif s.task == "grounding":  # V-Triune's rising bar: a distractor must fail even at its lowest point
            tweaked.append(replace(s, verifier_params={**s.verifier_params, "threshold": VTRIUNE_IOU_SCHEDULE}))
        else:
            tweaked.append(s)
    out = reformulate(tweaked, ReformulateConfig(seed=5))
    checked = Counter()
    for v in _variants(out, "judge", "choice"):
        if v.task not in (*loose, "grounding"):
            continue
        texts = [v.meta["curr_reft"]["candidate"]] if v.id.endswith("#judge") else v.verifier_params["options"]
        right = [v.answer == "yes"] if v.id.endswith("#judge") else [chr(ord("A") + i) in v.meta["curr_reft"]["correct"] for i in range(len(texts))]
        for text, ok in zip(texts, right):
            assert source_accepts(v, text) == ok, (v.id, text)
            checked[v.task] += not ok
        if v.task == "counting":  # the step clears the tolerance: every wrong number is >= 2 away
            truth = int(v.meta["curr_reft"]["source_answer"])
            assert all(abs(int(float(t)) - truth) >= 2 for t, ok in zip(texts, right) if not ok)
    assert all(checked[task] > 0 for task in (*loose, "grounding")), checked


def test_yes_no_balance_per_task_and_split(sources, result):
    summary = result.summary()
    assert summary["balance_ok"] and summary["unbalanced_tasks"] == []
    for task, b in summary["judge_balance"].items():
        assert 0.45 <= b["yes_share"] <= 0.55, (task, b)
    per_group = defaultdict(Counter)
    for v in result.stages["judge"]:
        per_group[(v.task, v.split)][v.answer] += 1
    for group, c in per_group.items():
        assert abs(c["yes"] - c["no"]) <= 1, (group, c)
    skewed = reformulate(sources, ReformulateConfig(seed=3, yes_share=0.3, stages=["judge"]))
    for task, b in skewed.summary()["judge_balance"].items():
        n = b["yes"] + b["no"]
        assert b["yes"] == int(n * 0.3 + 0.5), (task, b)


def test_variants_never_cross_splits(sources, result):
    split_of = {s.id: s.split for s in sources}
    for v in _variants(result, "judge", "choice", "open"):
        info = v.meta["curr_reft"]
        assert v.split == split_of[info["source_id"]]
        assert all(split_of[d] == v.split for d in info["distractor_ids"]), v.id
    assert find_split_leaks(sources + _variants(result, "judge", "choice", "open")) == []


def test_leak_check_reports_sources_and_distractors_across_splits(sources, result):
    variant = result.stages["choice"][0]
    moved = replace(variant, split="test" if variant.split != "test" else "train")
    leaks = find_split_leaks([variant, moved])
    assert [(x.source_id, x.via) for x in leaks] == [(variant.meta["curr_reft"]["source_id"], "source")]
    other = next(s for s in sources if s.split != variant.split)
    borrowed = replace(variant, meta={**variant.meta, "curr_reft": {**variant.meta["curr_reft"], "distractor_ids": [other.id]}})
    leaks = find_split_leaks([borrowed, other])
    assert [(x.source_id, x.via, x.variant_id) for x in leaks] == [(other.id, "distractor", variant.id)]
    with pytest.raises(SplitLeakError):
        assert_no_split_leakage([borrowed, other])
    # a leaking input is quarantined for every stage, not reformulated
    twin = replace(sources[0], split="test")
    out = reformulate([sources[0], twin, *sources[1:40]], ReformulateConfig())
    reasons = {(q.record_id, q.reason) for q in out.quarantined}
    assert (sources[0].id, ReformulateReason.SPLIT_LEAK.value) in reasons
    assert all(source_id_of_variant(v) != sources[0].id for v in _variants(out, "judge", "choice", "open"))


def test_distractors_come_only_from_the_same_split(sources):
    """The only other answer of this task lives in another split: no distractor may be borrowed from it."""
    image = sources[0]
    a = replace(image, id="lone-train", task="lone", messages=[Message("user", "<image>What colour is it?")], answer="red", verifier="exact", verifier_params={}, split="train")
    b = replace(a, id="lone-test", answer="blue", split="test")
    out = reformulate([a, b], ReformulateConfig())
    assert out.stages["judge"] == [] and out.stages["choice"] == []
    assert {(q.record_id, q.reason) for q in out.quarantined} == {
        ("lone-train", "no_distractor"), ("lone-test", "no_distractor"), ("lone-train", "too_few_options"), ("lone-test", "too_few_options")}


def test_same_seed_same_variants_whatever_the_input_order(sources, result):
    again = reformulate(sources, ReformulateConfig(seed=3))
    for stage in ("judge", "choice", "open"):
        assert [v.to_row() for v in again.stages[stage]] == [v.to_row() for v in result.stages[stage]]
    shuffled = list(sources)
    random.Random(0).shuffle(shuffled)
    reordered = reformulate(shuffled, ReformulateConfig(seed=3))
    for stage in ("judge", "choice"):
        by_id = {v.id: v.to_row() for v in reordered.stages[stage]}
        assert by_id == {v.id: v.to_row() for v in result.stages[stage]}
    other = reformulate(sources, ReformulateConfig(seed=4))
    assert [v.to_row() for v in other.stages["choice"]] != [v.to_row() for v in result.stages["choice"]]


def test_nothing_vanishes_unsupported_and_bad_sources_are_quarantined(sources):
    base = sources[:30]
    already_choice = replace(base[0], id="mc-1", verifier="choice", answer="B", verifier_params={})
    judge_input = replace(base[1], id="judge-1", verifier="yesno", answer="yes", meta={"curr_reft": {"stage": "judge"}})
    bad_box = next(replace(s, id="bad-box", answer="somewhere left") for s in sources if s.task == "grounding")
    no_image = replace(base[2], id="no-image", images=[])
    repeated = replace(base[3], answer="99")  # same id and split as base[3]
    extra = [already_choice, judge_input, bad_box, no_image, repeated]
    out = reformulate([*base, *extra], ReformulateConfig())
    reasons = {(q.record_id, q.source, q.reason) for q in out.quarantined}
    for stage in ("judge", "choice"):
        assert ("mc-1", f"reformulate:{stage}", "unsupported_verifier") in reasons
        assert ("judge-1", f"reformulate:{stage}", "not_open") in reasons
        assert ("bad-box", f"reformulate:{stage}", "truth_not_verifiable") in reasons
    for stage in ("judge", "choice", "open"):
        assert ("no-image", f"reformulate:{stage}", "image_placeholder_mismatch") in reasons
        assert (base[3].id, f"reformulate:{stage}", "duplicate_id") in reasons
    assert ("judge-1", "reformulate:open", "not_open") in reasons
    assert "mc-1" in {v.id for v in out.stages["open"]}  # still usable as an open sample
    assert [v.answer for v in out.stages["open"] if v.id == base[3].id] == [base[3].answer]  # the first of a repeated id wins
    every = {s.id for s in [*base, *extra]}
    for stage, rows in out.stages.items():
        accounted = {source_id_of_variant(v) for v in rows} | {q.record_id for q in out.quarantined if q.source == f"reformulate:{stage}"}
        assert accounted == every, stage


def test_prompts_are_stage_aware_and_carry_provenance(result):
    judge_cfg = load_config(RewardConfig, REPO / "configs" / "reward" / "curr_reft_judge.yaml")
    for v in result.stages["judge"]:
        text = v.messages[-1].content
        assert text.startswith("<image>") and text.endswith(" Answer yes or no. Put the final answer in \\boxed{}.")
        assert "Give the box" not in text and "Proposed" in text
        info = v.meta["curr_reft"]
        assert v.id == info["source_id"] + "#judge" and info["variant"] == info["stage"] == "judge" and info["seed"] == 3
        expected_methods = ("none",) if v.answer == "yes" else ("pool", "task_pool", "perturb", "complement")
        assert info["distractor_method"] in expected_methods
    grounding = next(v for v in result.stages["judge"] if v.task == "grounding")
    good = compute_reward(f"<think>look</think><answer>\\boxed{{{grounding.answer}}}</answer>", grounding.answer, grounding.verifier, grounding.verifier_params, judge_cfg, grounding.task)
    assert good.acc == 1.0 and good.format == 1.0  # a yes/no stage never demands a box
    for v in result.stages["choice"]:
        text = v.messages[-1].content
        assert "\nOptions:\nA. " in text and "\\boxed{}" in text and "Give the box" not in text
        multi = v.meta["curr_reft"]["multi_select"]
        assert multi == (v.task == "colour_set")
        assert ("Select every correct option" in text) == multi
    assert any("," in v.answer for v in result.stages["choice"] if v.task == "colour_set")  # real multi-select answers
    opened = {v.id: v for v in result.stages["open"]}
    src = result.stages["judge"][0].meta["curr_reft"]["source_id"]
    assert opened[src].meta["curr_reft"]["stage"] == "open" and opened[src].verifier not in ("yesno", "choice")


def test_recast_question_drops_only_format_sentences():
    drop = ReformulateConfig().prompts.drop_sentences
    assert recast_question("<image>Where is the red circle? Give the box. Put the final answer in \\boxed{}.", drop) == "<image>Where is the red circle?"
    assert recast_question("<image>What is 1.5 + 2? Answer with a number.", drop) == "<image>What is 1.5 + 2?"
    assert recast_question("<image>Give the box of the dog.", drop) == "<image>Give the box of the dog."  # nothing else would remain


def test_job_writes_stage_shards_summary_and_quarantine(tmp_path, sources, result):
    inp = tmp_path / "corpus"
    for split in SPLITS:
        write_shards([s for s in sources if s.split == split], inp / split, rows_per_shard=64)
    broken = replace(sources[0], id="empty-answer", answer=" ")
    write_shards([broken], inp / "extra", prefix="bad")
    cfg = load_config(ReformulateJobConfig, REPO / "configs" / "reformulate" / "default.yaml", [f"input={inp}", f"output={tmp_path / 'out'}", "reformulate.seed=3", "rows_per_shard=50"])
    assert to_dict(load_config(ReformulateJobConfig, REPO / "configs" / "reformulate" / "default.yaml")) == to_dict(ReformulateJobConfig())
    summary = run_reformulate(cfg)
    out = tmp_path / "out"
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["seed"] == 3 and summary["config_hash"] == result.config_hash and summary["gradus_version"]
    assert summary["bad_input"] == {"empty_answer": 1} and summary["balance_ok"]
    for stage in ("judge", "choice", "open"):
        assert sorted(p.name for p in (out / stage).iterdir()) == sorted(SPLITS)
        written = list(iter_samples(out / stage))
        assert len(written) == summary["counts"][stage]["total"]
        assert {v.id: v.to_row() for v in written} == {v.id: v.to_row() for v in result.stages[stage]}
    quarantine = pq.read_table(out / "quarantine" / "quarantine.parquet").to_pylist()
    assert {q["reason"] for q in quarantine} >= {"empty_answer"}
    assert sum(summary["quarantined"].get("judge", {}).values()) == sum(1 for q in quarantine if q["source"] == "reformulate:judge")
    run_reformulate(replace(cfg, reformulate=replace(cfg.reformulate, stages=["choice"])))
    assert not (out / "judge").exists() and (out / "choice").exists()
    with pytest.raises(ConfigError):
        run_reformulate(ReformulateJobConfig())


def test_a_box_distractor_fails_at_every_point_of_a_threshold_schedule(sources):
    """With a bar that falls during training, distractors must clear the lowest point, not just the first."""
    falling = {"schedule": [[0.0, 0.5], [0.5, 0.3]]}
    grounding = [replace(s, verifier_params={**s.verifier_params, "threshold": falling}) for s in sources if s.task == "grounding"]
    out = reformulate(grounding, ReformulateConfig(seed=1))
    wrong = [t for v in out.stages["choice"] for i, t in enumerate(v.verifier_params["options"]) if chr(ord("A") + i) not in v.meta["curr_reft"]["correct"]]
    truths = {v.id: v.meta["curr_reft"]["source_answer"] for v in out.stages["choice"]}
    assert wrong
    for v in out.stages["choice"]:
        params = {**v.meta["curr_reft"]["source_params"], "progress": 1.0}  # the lowest bar, 0.3
        for i, text in enumerate(v.verifier_params["options"]):
            assert verify("iou", format_response(text), truths[v.id], params).passed == (chr(ord("A") + i) in v.meta["curr_reft"]["correct"])


def test_math_answers_use_the_isolated_verifier(sources):
    """Chart answers judged by math-verify (spawned worker): \\frac{3}{4} and 0.75 are one answer, never two options."""
    chart = next(s for s in sources if s.task == "chart" and s.split == "test")
    base = replace(chart, task="chart_math", verifier="math", verifier_params={})
    charts = [replace(base, id="three-quarters", answer="\\frac{3}{4}"), replace(base, id="point-75", answer="0.75"), replace(base, id="two", answer="2")]
    out = reformulate(charts, ReformulateConfig(seed=2, stages=["choice"]))
    assert out.quarantined == []
    by_id = {v.meta["curr_reft"]["source_id"]: v for v in out.stages["choice"]}
    for v in out.stages["choice"]:
        assert verify("choice", format_response(v.answer), v.answer, v.verifier_params).passed
        options = v.verifier_params["options"]
        accepted = [source_accepts(v, t) for t in options]
        assert accepted == [chr(ord("A") + i) in v.meta["curr_reft"]["correct"] for i in range(len(options))], v.id
    # the pool holds 0.75 and 2 for \\frac{3}{4}: 2 is a distractor, 0.75 is the same answer and never an option
    assert "2" in by_id["three-quarters"].verifier_params["options"] and "0.75" not in by_id["three-quarters"].verifier_params["options"]
    assert "\\frac{3}{4}" not in by_id["point-75"].verifier_params["options"]


# ----- an independent check of the distractors ---------------------------------------------------
# The search keeps a candidate when the source's verifier rejects it, so checking its output with
# that same verifier proves nothing. Here each family gets a truth, answers known to be right
# (other ways of writing it) and answers known to be wrong, all in the answer pool beside it;
# every distractor shown must not be a known-right answer and must be wrong by a rule written
# out below, without calling any verifier.

def _number(text: str) -> float:
    return float(text.strip().rstrip("."))


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _boxes(text: str) -> list[tuple[list[float], str | None]]:
    obj = ast.literal_eval(text.strip())
    if isinstance(obj, dict):
        obj = [obj]
    if len(obj) == 4 and all(isinstance(v, (int, float)) for v in obj):
        return [(list(obj), None)]
    return [(o["bbox_2d"], o.get("label")) if isinstance(o, dict) else (list(o), None) for o in obj]


def _one_box_right(text: str, truth: str, bar: float) -> bool:
    got, want = _boxes(text), _boxes(truth)
    if len(got) != 1:
        return False
    (box, label), (true_box, true_label) = got[0], want[0]
    return label == true_label and box[2] > box[0] and box[3] > box[1] and _iou(box, true_box) >= bar


def _label_set(text: str) -> frozenset[str]:
    return frozenset(x.strip().lower() for x in text.replace(";", ",").split(",") if x.strip())


# task (a synth family or this module's extra tasks), verifier, params, truth, known right, known wrong, right-by-hand
KNOWN_ANSWERS = [
    ("counting", "numeric", {"tolerance": 0}, "3", ["3.0", "3.", "03"], ["2", "4", "7"], lambda t, truth: _number(t) == 3),
    ("chart", "numeric", {"tolerance": 0.05, "relative": True}, "0.02", ["0.0201", "0.0199", "2e-2"], ["0.03", "0.5", "0.01"],
     lambda t, truth: abs(_number(t) - 0.02) <= 0.001 + 1e-12),
    ("color", "exact", {"normalize": True}, "red", ["Red", "red.", "RED"], ["blue", "green", "dark red"],
     lambda t, truth: t.strip().lower().rstrip(".") == "red"),
    ("ocr", "ocr", {"max_distance": 0.0}, "A7K2", ["a7k2", "A7k2"], ["A7K3", "B7K2", "A7K"], lambda t, truth: t.strip().lower() == "a7k2"),
    ("grounding", "iou", {"threshold": 0.5, "scale": "pixel", "image_size": [112, 112]}, "[20, 20, 60, 60]",
     ["[21, 20, 60, 61]", "[22, 22, 62, 62]"], ["[60, 60, 100, 100]", "[0, 0, 10, 10]", "[0.18, 0.18, 0.54, 0.54]"],
     lambda t, truth: _one_box_right(t, truth, 0.5)),
    # V-Triune-style truth on the 0-1000 grid of a 1280x960 image, at their first bar (0.85)
    ("detection", "detection", {"threshold": 0.85, "scale": "thousand", "image_size": [1280, 960]},
     "[{'bbox_2d': [100, 50, 1000, 1000], 'label': 'dog'}]",
     ["[{'bbox_2d': [100, 50, 990, 990], 'label': 'dog'}]", "[{'bbox_2d': [105, 55, 1000, 1000], 'label': 'dog'}]"],
     ["[{'bbox_2d': [0, 0, 300, 300], 'label': 'dog'}]", "[{'bbox_2d': [100, 50, 1000, 1000], 'label': 'cat'}]"],
     lambda t, truth: _one_box_right(t, truth, 0.85)),
    ("colour_set", "labels", {"threshold": 1.0}, "red, blue", ["blue, red", "Red; Blue"], ["red", "green", "red, green", "green, blue"],
     lambda t, truth: _label_set(t) == _label_set(truth)),
]


@pytest.fixture(scope="module")
def known_result(sources):
    image_of = {}
    for s in sources:
        image_of.setdefault(s.task, s)
    rows = []
    for task, verifier, params, truth, right, wrong, _ in KNOWN_ANSWERS:
        base = replace(image_of[task], task=task, verifier=verifier, verifier_params=params, split="train",
                       messages=[Message("user", "<image>What is shown here?")])
        rows.append(replace(base, id=f"known-{task}", answer=truth))
        rows += [replace(base, id=f"known-{task}-{kind}{i}", answer=a) for kind, answers in (("r", right), ("w", wrong)) for i, a in enumerate(answers)]
    return reformulate(rows, ReformulateConfig(seed=11, stages=["judge", "choice"]))


@pytest.mark.parametrize("task,verifier,params,truth,right,wrong,right_by_hand", KNOWN_ANSWERS, ids=[k[0] for k in KNOWN_ANSWERS])
def test_distractors_are_wrong_by_an_independent_rule(known_result, task, verifier, params, truth, right, wrong, right_by_hand):
    assert right_by_hand(truth, truth) and all(right_by_hand(t, truth) for t in right) and not any(right_by_hand(t, truth) for t in wrong)
    shown: list[str] = []
    judge = next(v for v in known_result.stages["judge"] if v.id == f"known-{task}#judge")
    candidate = judge.meta["curr_reft"]["candidate"]
    if judge.answer == "no":
        shown.append(candidate)
    else:
        assert candidate == truth
    choice = next(v for v in known_result.stages["choice"] if v.id == f"known-{task}#choice")
    multi = choice.meta["curr_reft"]["multi_select"]
    for i, text in enumerate(choice.verifier_params["options"]):
        correct = chr(ord("A") + i) in choice.meta["curr_reft"]["correct"]
        if multi:  # options are single labels: right exactly when the label is in the true set
            assert (text.strip().lower() in _label_set(truth)) == correct, text
        elif correct:
            assert text == truth
        if not correct:
            shown.append(text)
    assert shown, task
    for text in shown:
        assert text not in right, (task, text)
        assert not right_by_hand(text, truth), (task, text)
    # the known-wrong pool answers are real candidates, not crowded out by the rule above
    assert set(shown) & set(wrong), (task, shown)


def test_relative_number_distractors_stay_near_a_small_truth():
    """Relative tolerance below 1 is relative: 5 % of 0.001 leaves near misses, not +-0.1 jumps."""
    params = {"tolerance": 0.05, "relative": True}
    made = [float(t) for t in number_variants("0.001", "numeric", params, seeded_rng(0, "x"))]
    assert made and all(abs(v - 0.001) > 0.05 * 0.001 for v in made)
    assert min(abs(v - 0.001) for v in made) <= 0.002, made
    assert not any(verify("numeric", format_response(f"{v:.3f}"), "0.001", params).passed for v in made)
