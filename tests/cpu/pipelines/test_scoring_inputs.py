"""Every pipeline reads its input by one rule (pipelines/inputs.py), on Ray Data with a real model
(the tiny random model, HF backend):

- `gradus data convert --out X` leaves its rejected records in X/quarantine/; `input=X` reads only
  the shards, so those records never come back as a bogus row;
- an id repeated across shards, or within one, is read once, at its first copy in path order and then
  row order; each later copy is a `duplicate_id` record naming both places;
- a path-only image is read under the job's `images.roots`, and without roots the row is quarantined
  with a reason that says which setting is missing.
"""
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.cli import main
from engine.data.images import ImagePolicy
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import write_shards
from engine.generation.base import GenerationConfig
from engine.pism import PismConfig
from engine.tracking import WandbConfig
from pipelines.cmab import CmabJobConfig, CmabResponsesConfig, HeatmapConfig, run_cmab
from pipelines.evaluate import EvalJobConfig, run_eval
from pipelines.generate import ActorPoolConfig, GenerateJobConfig, run_generate
from pipelines.pism import PismJobConfig, run_pism
from pipelines.rejection_sample import RejectionSampleConfig, run_rejection_sample

pytestmark = pytest.mark.slow
QUESTION = "<image>How many shapes are there? Put the final answer in \\boxed{}."
SCORED = ["a", "b", "c", "p", "twin"]  # the converted samples, the path-only one, the first copy of twin
DUPLICATES = [("a", "copy"), ("twin", "second")]  # (id, task) of the later copies


def _png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return buf.getvalue()


def _sample(sid: str, task: str, image: ImageRef) -> Sample:
    return Sample(sid, [image], [Message("user", QUESTION)], "3", task, "count")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    for name, color in (("a", "red"), ("b", "green"), ("c", "blue"), ("sub/p", "yellow")):
        (root / f"{name}.png").write_bytes(_png(color))
    return root


@pytest.fixture(scope="module")
def corpus(root, tmp_path_factory):
    """`gradus data convert` output (3 samples, 2 quarantined records) plus a later shard holding a copy
    of `a`, the path-only sample `p` and two copies of `twin`."""
    base = tmp_path_factory.mktemp("corpus")
    records = [{"id": s, "images": [f"{s}.png"], "messages": [{"role": "user", "content": QUESTION}], "solution": "3",
                "task": "counting", "verifier": "count"} for s in ("a", "b", "c")]
    lines = [json.dumps(r) for r in records] + ["{not json", json.dumps({**records[0], "id": "m", "images": ["missing.png"]})]
    src = base / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = base / "X"
    assert main(["data", "convert", "--from", "swift", "--input", str(src), "--out", str(out), "--image-root", str(root)]) == 0
    assert len(pq.read_table(out / "quarantine" / "quarantine.parquet")) == 2  # the records that must not come back
    write_shards([_sample("a", "copy", ImageRef(_png("black"))), _sample("p", "counting", ImageRef(path="sub/p.png")),
                  _sample("twin", "first", ImageRef(_png("white"))), _sample("twin", "second", ImageRef(_png("gray")))],
                 out, prefix="part-1")  # sorts after the converter's part-00000
    return out


@pytest.fixture(scope="module")
def generation(tiny_random_model):
    return GenerationConfig(backend="hf", model_path=str(tiny_random_model), max_new_tokens=8, device="cpu")


ACTORS = ActorPoolConfig(num_cpus=1, batch_size=4)
OFF = WandbConfig(mode="disabled")


def _pism(corpus, out, generation, roots) -> PismJobConfig:
    return PismJobConfig(input=str(corpus), output=str(out), pism=PismConfig(ratios=[0.0, 0.5], draws=2, tau=0.5), generation=generation,
                         images=ImagePolicy(roots=roots), actors=ACTORS, rows_per_block=2, wandb=OFF)


def _check(scores: pd.DataFrame, quarantine: pd.DataFrame):
    """Only the shards' rows, each id once at its first copy; the later copies quarantined as duplicates."""
    assert sorted(scores["id"]) == SCORED and scores["error"].isna().all(), scores[["id", "error", "error_detail"]]
    by_id = dict(zip(scores["id"], scores["task"]))
    assert (by_id["a"], by_id["twin"]) == ("counting", "first")
    assert list(zip(quarantine["id"], quarantine["task"])) == DUPLICATES and set(quarantine["error"]) == {"duplicate_id"}
    a, twin = quarantine["error_detail"]
    assert "part-1-00000.parquet row 0" in a and "part-00000.parquet row 0" in a
    assert "part-1-00000.parquet row 3" in twin and "part-1-00000.parquet row 2" in twin


def test_pism_reads_a_converted_folder_with_duplicates_and_image_roots(ray_session, corpus, root, generation, tmp_path):
    summary = run_pism(_pism(corpus, tmp_path / "pism", generation, (str(root),)))
    _check(pd.read_parquet(tmp_path / "pism" / "scores.parquet"), pd.read_parquet(tmp_path / "pism" / "quarantine.parquet"))
    assert summary["rows"] == 7 and summary["quarantined"] == {"duplicate_id": 2}
    scores = pd.read_parquet(tmp_path / "pism" / "scores.parquet").set_index("id")
    assert scores.loc["p", "generations"] >= 2  # the path-only image was read and scored


def test_pism_without_image_roots_quarantines_the_path_only_row(ray_session, corpus, generation, tmp_path):
    run_pism(_pism(corpus, tmp_path / "pism", generation, ()))
    scores = pd.read_parquet(tmp_path / "pism" / "scores.parquet")
    quarantine = pd.read_parquet(tmp_path / "pism" / "quarantine.parquet").set_index("id")
    assert sorted(scores["id"]) == ["a", "b", "c", "twin"]
    assert quarantine.loc["p", "error"] == "image_path_escape"
    assert "no image roots configured" in quarantine.loc["p", "error_detail"] and "images.roots" in quarantine.loc["p", "error_detail"]


def test_cmab(ray_session, corpus, root, tiny_random_model, tmp_path):
    cfg = CmabJobConfig(input=str(corpus), output=str(tmp_path / "cmab"), model_path=str(tiny_random_model), device="cpu",
                        responses=CmabResponsesConfig(draws=1), generation=GenerationConfig(backend="hf", max_new_tokens=8),
                        images=ImagePolicy(roots=(str(root),)), heatmaps=HeatmapConfig(per_task=0), actors=ACTORS, rows_per_block=2, wandb=OFF)
    run_cmab(cfg)
    _check(pd.read_parquet(tmp_path / "cmab" / "scores.parquet"), pd.read_parquet(tmp_path / "cmab" / "quarantine.parquet"))


def test_generate(ray_session, corpus, root, generation, tmp_path):
    summary = run_generate(GenerateJobConfig(input=str(corpus), output=str(tmp_path / "gen"), generation=generation,
                                             images=ImagePolicy(roots=(str(root),)), actors=ACTORS))
    out = pq.read_table(tmp_path / "gen").to_pandas().sort_values(["id", "task"], kind="stable")
    bad = out["error"].notna()
    _check(out[~bad], out[bad].sort_values("id", kind="stable"))
    assert summary["rows"] == 7 and summary["errors"] == {"duplicate_id": 2}


def test_eval(ray_session, corpus, root, tiny_random_model, tmp_path):
    cfg = EvalJobConfig(input=str(corpus), output=str(tmp_path / "eval"), models={"m": str(tiny_random_model)}, n=1, k=[1],
                        generation=GenerationConfig(backend="hf", temperature=0.0, max_new_tokens=8, device="cpu"),
                        images=ImagePolicy(roots=(str(root),)), actors=ACTORS, rows_per_block=2, wandb=OFF)
    summary = run_eval(cfg)
    _check(pd.read_parquet(tmp_path / "eval" / "m" / "scores.parquet"), pd.read_parquet(tmp_path / "eval" / "m" / "quarantine.parquet"))
    assert summary["models"]["m"]["evaluated"] == 5 and summary["models"]["m"]["quarantined"] == {"duplicate_id": 2}


def test_rejection_sample(ray_session, corpus, root, tiny_random_model, tmp_path):
    cfg = RejectionSampleConfig(input=str(corpus), output=str(tmp_path / "rs"), model_path=str(tiny_random_model), n=2,
                                generation=GenerationConfig(backend="hf", temperature=1.0, max_new_tokens=8, device="cpu"),
                                images=ImagePolicy(roots=(str(root),)), actors=ACTORS, rows_per_block=2, wandb=OFF)
    summary = run_rejection_sample(cfg)
    _check(pd.read_parquet(tmp_path / "rs" / "scores.parquet"), pd.read_parquet(tmp_path / "rs" / "quarantine.parquet"))
    assert summary["sampled"] == 5 and summary["quarantined"] == {"duplicate_id": 2}


def test_a_converted_folder_with_no_sample_scores_to_empty_outputs(ray_session, root, generation, tmp_path):
    """Every record quarantined at conversion: the one empty shard gives empty outputs, not a crash."""
    src = tmp_path / "in.jsonl"
    src.write_text("{not json\n")
    assert main(["data", "convert", "--from", "swift", "--input", str(src), "--out", str(tmp_path / "X"), "--image-root", str(root)]) == 0
    summary = run_pism(_pism(tmp_path / "X", tmp_path / "pism", generation, (str(root),)))
    assert summary["rows"] == 0 and len(pd.read_parquet(tmp_path / "pism" / "scores.parquet")) == 0
    summary = run_generate(GenerateJobConfig(input=str(tmp_path / "X"), output=str(tmp_path / "gen"), generation=generation, actors=ACTORS))
    assert summary["rows"] == 0 and summary["errors"] == {}
