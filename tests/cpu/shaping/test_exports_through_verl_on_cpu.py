"""Shaping outputs reach verl whole: Curr-ReFT judge / choice / open variants and a difficulty-tagged
mixture, exported with gradus's verl writer, load through verl 0.9.1's own RLHFDataset + collate_fn
with the tiny model's processor; the row count is unchanged (verl silently filters to zero when its
processor fails, and its overlong filter runs the processor on every row), images decode, and extra_info carries what compute_score needs."""
import json

import pytest

from engine.data.formats import write_records
from engine.data.response import format_response
from engine.shaping.mixture import curriculum_order
from engine.shaping.reformulate import ReformulateConfig, reformulate
from engine.synth import SynthConfig, generate_split
from engine.data.images import ImagePolicy
from rl.reward import compute_score

POLICY = ImagePolicy()


@pytest.fixture(scope="module")
def variants():
    sources = generate_split(SynthConfig(train_per_family=8, val_per_family=2, test_per_family=2), "train")
    result = reformulate(sources, ReformulateConfig(stages=["judge", "choice", "open"], seed=0))
    # a small pool can leave a question with no wrong answer to offer: recorded, not dropped
    assert {q.reason for q in result.quarantined} <= {"no_distractor", "too_few_options"}
    return result


def _verl_dataset(path, model, tmp_path):
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer
    from verl.utils.dataset import rl_dataset

    config = OmegaConf.create({"cache_dir": str(tmp_path / "verl-cache"), "max_prompt_length": 1024, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": None})
    return rl_dataset, rl_dataset.RLHFDataset([str(path)], AutoTokenizer.from_pretrained(model), config, AutoProcessor.from_pretrained(model))


@pytest.mark.parametrize("stage", ["judge", "choice", "open"])
def test_curr_reft_stage_exports_load_in_verl(variants, stage, warm_model, tmp_path):
    samples = variants.stages[stage]
    (path,) = write_records("verl", samples, tmp_path / f"{stage}.parquet")
    rl_dataset, dataset = _verl_dataset(path, warm_model, tmp_path)
    assert len(dataset) == len(samples) > 0
    batch = rl_dataset.collate_fn([dataset[i] for i in range(len(dataset))])
    assert len(batch["raw_prompt"]) == len(samples)
    for i, s in enumerate(samples):
        item = dataset[i]
        images = [p["image"] for m in item["raw_prompt"] for p in (m["content"] if isinstance(m["content"], list) else []) if p["type"] == "image"]
        assert [im.size for im in images] == [im.size for im in s.load_images(POLICY)]  # verl decoded every image
        info = item["extra_info"]
        assert info["id"] == s.id and info["verifier"] == s.verifier  # judge/choice variants keep yesno/choice
        # the variant's expected answer scores full accuracy through our verl reward entrypoint
        assert compute_score(item["data_source"], format_response(s.answer), item["reward_model"]["ground_truth"], info)["acc"] == 1.0, (s.id, s.verifier)


def test_curriculum_ordered_export_keeps_order_in_verl(variants, warm_model, tmp_path):
    samples = variants.stages["open"]
    for i, s in enumerate(samples):
        s.meta["difficulty"] = {"bucket": ("easy", "mid", "hard")[i % 3], "score": (i * 7) % 10 / 10, "scorer": "pism"}
    ordered = [samples[i] for i in curriculum_order([s.meta["difficulty"]["score"] for s in samples])]
    (path,) = write_records("verl", ordered, tmp_path / "curriculum.parquet")
    _, dataset = _verl_dataset(path, warm_model, tmp_path)
    scores = [json.loads(dataset[i]["extra_info"]["difficulty"])["score"] for i in range(len(dataset))]
    assert len(scores) == len(samples) and scores == sorted(scores)  # data.shuffle=False trains easy -> hard
