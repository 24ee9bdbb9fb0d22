"""The online sampler as a verl 0.9.1 plugin (rl/grpo/verl_sampler.py), run through verl's own code on CPU.

What this proves, with no Ray, GPU or rollout engine:
- the override set `gradus train grpo --backend verl` builds for `sampler.kind: online` composes in
  verl's trainer config, reads back, passes verl's validate_config, and names a dataset class verl's
  own loader (`get_dataset_class`, `data.custom_cls`) loads from the file;
- verl's `create_rl_dataset` / `create_rl_sampler` / `RayPPOTrainer._create_dataloader` (the
  StatefulDataLoader and collate_fn the v0 trainer iterates) serve, step by step, exactly the prompts
  the sampler picks; `on_batch_end(batch=...)` (which verl's fit loop calls after each step) hands the
  sampler every rollout's verdict, scored by rl/reward.py compute_score;
- verl's checkpoint order (data.pt saved before that step's on_batch_end) and its restore
  (`train_dataloader.load_state_dict`) give, after a resume, the same next prompts as a run that never
  stopped; the validation set (other files) stays verl's plain dataset;
- after the run (rl/grpo/verl_run.py train_and_merge), the sampler's posterior is the one a sampler
  given every step's verdicts by hand holds, the last step's too, which verl never hands the plugin:
  it is rebuilt from the plugin's saved state and verl's rollout dump (written by verl's own writer),
  written to sampler_posterior.parquet and joined into the store; without the dump the missing steps
  are named and warned about.

The rollouts are SIMULATED (unit-scoped, stated here): each response is the right or a wrong boxed
answer by a fixed table of per-sample pass rates and a seeded hash; compute_score judges them for real.
"""
from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.config import ConfigError, load_config
from rl.grpo.config import GrpoJobConfig
from rl.grpo.verl_launch import sampler_settings_path, validate_overrides, verl_overrides, write_sampler_settings
from tests.support.verl_merge import write_merged_model

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "configs" / "grpo" / "qwen2_5_vl_7b_verl.yaml"
N_SAMPLES, PROMPTS, GROUP, STEPS, SAVE_AT = 12, 3, 4, 6, 3
STRATA = ["easy", "mid", "hard", "unsolved"]
TRUE_PASS = {"easy": 0.95, "mid": 0.5, "hard": 0.3, "unsolved": 0.0}  # the simulated learner's pass rates


def _png(colour: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _samples(prefix: str, n: int) -> list:
    from engine.data.sample import ImageRef, Message, Sample

    return [Sample(f"{prefix}-{i}", [ImageRef(_png("red"))], [Message("user", "<image>How many circles?")], str(i + 2),
                   "counting", "numeric", meta={"difficulty": {"metrics": {"pism": {"stratum": STRATA[i % 4]}}}})
            for i in range(n)]


def _write_data(path: Path, prefix: str, n: int) -> Path:
    from engine.data.formats.verl import write_verl

    write_verl(_samples(prefix, n), path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sampler_data")
    return _write_data(root / "train.parquet", "t", N_SAMPLES), _write_data(root / "val.parquet", "v", 4)


def _cfg(out: Path, model: Path, **changes) -> GrpoJobConfig:
    base = {"model_path": str(model), "output_dir": str(out), "sampler.kind": "online", "algorithm.steps": STEPS,
            "algorithm.prompts_per_step": PROMPTS, "algorithm.group_size": GROUP, "algorithm.mini_batch_prompts": 0,
            "verl.nnodes": 1, "verl.n_gpus_per_node": 1, "verl.tensor_parallel_size": 1, "verl.micro_batch_per_gpu": 1,
            "verl.test_freq": 0, "verl.address": "''", "reward.config": "''", "data.max_prompt_length": 256}
    cfg = load_config(GrpoJobConfig, EXAMPLE, [f"{k}={v}" for k, v in {**base, **changes}.items()])
    cfg.validate()
    return cfg


def _verl_config(cfg: GrpoJobConfig, train: Path, val: Path, uploaded: bool = False):
    write_sampler_settings(cfg)
    return validate_overrides(verl_overrides(cfg, str(train), str(val), uploaded=uploaded))


# ----- the override set -----

def test_online_sampler_overrides_compose_and_verl_loads_the_plugin(tmp_path, data, tiny_random_model):
    from verl.utils.dataset.rl_dataset import get_dataset_class

    from rl.grpo.verl_sampler import OnlineSamplerDataset

    cfg = _cfg(tmp_path / "run", tiny_random_model)
    assert cfg.data.shuffle  # the example shuffles; the sampler's run must not
    config = _verl_config(cfg, *data)
    d = config.data
    assert (d.custom_cls.name, d.shuffle, d.dataloader_num_workers) == ("OnlineSamplerDataset", False, 0)
    assert d.gradus_sampler == str(sampler_settings_path(cfg)) and Path(d.gradus_sampler).is_file()
    assert get_dataset_class(d) is OnlineSamplerDataset  # verl's own loader, by module name (pkg://)
    uploaded = validate_overrides(verl_overrides(cfg, str(data[0]), str(data[1]), uploaded=True))
    assert uploaded.data.custom_cls == d.custom_cls  # the same on a cluster: the working_dir is on sys.path

    plain = validate_overrides(verl_overrides(_cfg(tmp_path / "u", tiny_random_model, **{"sampler.kind": "uniform"}),
                                              str(data[0]), str(data[1])))
    assert plain.data.custom_cls.path is None and "gradus_sampler" not in plain.data and plain.data.shuffle is True


@pytest.mark.parametrize("changes, message", [
    ({"verl.use_v1": "true"}, "use_v1: false"),  # the v1 trainer never calls on_batch_end
    ({"verl.test_freq": 5}, "needs data.val"),  # without val, verl would validate on the driven train file
])
def test_online_sampler_refuses_verl_settings_it_cannot_work_under(tmp_path, data, tiny_random_model, changes, message):
    cfg = _cfg(tmp_path / "run", tiny_random_model, **changes)
    with pytest.raises(ConfigError, match=message):
        verl_overrides(cfg, str(data[0]), "" if "verl.test_freq" in changes else str(data[1]))


def test_dry_run_in_job_loads_the_plugin_and_reads_its_settings(tmp_path, data, tiny_random_model):
    from rl.grpo.verl_dry_run import check

    cfg = _cfg(tmp_path / "run", tiny_random_model)
    write_sampler_settings(cfg)
    overrides = verl_overrides(cfg, str(data[0]), str(data[1]))
    assert check(overrides)["sampler"] == "OnlineSamplerDataset"
    sampler_settings_path(cfg).unlink()  # e.g. output_dir not on storage the job sees
    with pytest.raises(FileNotFoundError):
        check(overrides)


def test_train_grpo_verl_dry_run_writes_the_settings_the_plugin_reads(tmp_path, data, tiny_random_model, monkeypatch):
    """`gradus train grpo --backend verl --dry-run` with the sampler on: the recorded override set points verl at a
    settings file holding this run's sampler section, seed, steps and verl's own checkpoint folder; a store named
    relative to the user's directory is made absolute (verl runs elsewhere)."""
    from dataclasses import replace

    from rl.grpo.run import run_grpo
    from rl.grpo.verl_sampler import read_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_store").mkdir()
    cfg = _cfg(tmp_path / "run", tiny_random_model, **{"data.train": str(data[0]), "data.val": str(data[1]), "dry_run": "true",
                                                       "sampler.store": "my_store"})
    record = run_grpo(cfg)
    assert record["launched"] is False
    config = validate_overrides(record["overrides"])
    settings = read_settings(config.data.gradus_sampler)
    assert settings["sampler"].store == str(tmp_path / "my_store")
    assert (replace(settings["sampler"], store="my_store"), settings["seed"], settings["steps"]) == (cfg.sampler, cfg.seed, STEPS)
    assert settings["checkpoint_dir"] == config.trainer.default_local_dir


# ----- verl's dataloader path, the verdicts, checkpoint and resume -----

def _trainer(config):
    """verl's RayPPOTrainer with only what its dataloader code reads (config, tokenizer, processor), the
    datasets built as main_ppo_v0's TaskRunner.run builds them, then verl's own _create_dataloader."""
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.dataset.rl_dataset import collate_fn

    trainer = RayPPOTrainer.__new__(RayPPOTrainer)
    trainer.config = config
    model = omega_conf_to_dataclass(config.actor_rollout_ref.model)
    trainer.tokenizer, trainer.processor = model.tokenizer, model.processor
    train = create_rl_dataset(config.data.train_files, config.data, trainer.tokenizer, trainer.processor, is_train=True)
    val = create_rl_dataset(config.data.val_files, config.data, trainer.tokenizer, trainer.processor, is_train=False)
    trainer._create_dataloader(train, val, collate_fn, create_rl_sampler(config.data, train))
    return trainer


def _passes(sid: str, step: int, j: int) -> bool:
    """The simulated policy: right with the sample's table pass rate, by a hash of (sample, step, rollout)."""
    u = int(hashlib.sha256(f"{sid}/{step}/{j}".encode()).hexdigest()[:8], 16) / 16**8
    return u < TRUE_PASS[STRATA[int(sid.split("-")[1]) % 4]]


def _scored(batch_dict: dict, step: int):
    """A collated dataloader batch -> the scored rollout batch verl's fit loop hands on_batch_end: a uid
    per prompt, GROUP rollouts each (interleaved), compute_score's keys stacked per key as verl does."""
    from verl import DataProto

    from rl.reward import compute_score

    batch = DataProto.from_single_dict(batch_dict)
    batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch.batch))], dtype=object)
    batch = batch.repeat(repeat_times=GROUP, interleave=True)
    rows = batch.non_tensor_batch
    results, responses = [], []
    for r in range(len(batch)):
        info, truth = rows["extra_info"][r], rows["reward_model"][r]["ground_truth"]
        answer = truth if _passes(info["id"], step, r % GROUP) else str(int(truth) + 100)
        response = f"<think>x</think><answer>\\boxed{{{answer}}}</answer>"
        results.append(compute_score(rows["data_source"][r], response, truth, dict(info)))
        responses.append(response)
    batch.non_tensor_batch.update({k: np.array([res[k] for res in results]) for k in results[0]})
    batch.meta_info["simulated"] = {"responses": responses, "reward_keys": list(results[0])}  # for the rollout dump
    return batch


def _train(trainer, ckpt_root: Path, until: int, save_at: int | None = None, die_before_update: bool = False) -> dict[int, list[str]]:
    """verl's fit loop, minus the model: step by step from the restored position. At `save_at` data.pt is
    written first and on_batch_end runs after, in verl's order; `die_before_update` stops right between."""
    picks = {}
    for batch_dict in trainer.train_dataloader:  # a restored dataloader restores the dataset here, at its first batch
        step = trainer.train_dataset.sampler.step  # verl's global step: the sampler has drawn this many batches
        picks[step] = [info["id"] for info in batch_dict["extra_info"]]
        batch = _scored(batch_dict, step)
        if step == save_at:
            folder = ckpt_root / f"global_step_{step}"
            folder.mkdir(parents=True)
            torch.save(trainer.train_dataloader.state_dict(), folder / "data.pt")  # ray_trainer._save_checkpoint
            (ckpt_root / "latest_checkpointed_iteration.txt").write_text(str(step))
            if die_before_update:
                return picks
        trainer.train_dataset.on_batch_end(batch=batch)
        if step == until:
            return picks
    return picks


def _resumed(config, ckpt_root: Path, step: int):
    """A fresh trainer restored as ray_trainer._load_checkpoint restores the dataloader."""
    trainer = _trainer(config)
    trainer.train_dataloader.load_state_dict(torch.load(ckpt_root / f"global_step_{step}" / "data.pt", weights_only=False))
    return trainer


def test_verl_dataloader_serves_the_samplers_picks_and_resumes_where_it_stopped(tmp_path, data, tiny_random_model):
    from rl.sampler import build_sampler

    cfg = _cfg(tmp_path / "run", tiny_random_model)
    config = _verl_config(cfg, *data)
    ckpt = Path(config.trainer.default_local_dir)
    assert ckpt == Path(cfg.output_dir).resolve() / "checkpoints"
    trainer = _trainer(config)
    train, val = trainer.train_dataset, trainer.val_dataset
    assert type(train).__name__ == "OnlineSamplerDataset" and train.sampler is not None
    assert len(train.sampler.ids) == N_SAMPLES and train.filtered_out == 0  # verl's prompt filter kept every row
    assert val.sampler is None and len(val) == 4 and val[2]["extra_info"]["id"] == "v-2"  # verl's plain dataset
    assert len(trainer.train_dataloader) == STEPS == trainer.total_training_steps  # the run is one epoch

    picks = _train(trainer, ckpt, until=STEPS - 1, save_at=SAVE_AT)  # a run that never stops (verl skips the last on_batch_end)
    assert list(picks) == list(range(1, STEPS))
    # the same sampler, driven by hand with the table's verdicts: verl's batches are its picks, step by step,
    # and on_batch_end gave it every rollout's verdict as compute_score judged it
    mirror, _ = build_sampler(cfg.sampler, list(train.dataframe["extra_info"]), cfg.seed)
    for step, ids in picks.items():
        assert ids == mirror.next_batch(PROMPTS), f"step {step}: verl's batch is not the sampler's pick"
        mirror.update([sid for sid in ids for _ in range(GROUP)], [_passes(sid, step, j) for sid in ids for j in range(GROUP)])
    assert train.sampler.state_dict() == mirror.state_dict()
    assert (ckpt / f"global_step_{SAVE_AT}" / "gradus_sampler.json").is_file()

    # killed after step SAVE_AT + 1; verl resumes from global_step_SAVE_AT
    resumed = _resumed(config, ckpt, SAVE_AT)
    again = _train(resumed, ckpt, until=STEPS - 1)
    assert list(again) == list(range(SAVE_AT + 1, STEPS))
    assert again == {s: picks[s] for s in again}, "a resumed run must draw what the uninterrupted run drew"
    assert resumed.train_dataset.sampler.state_dict() == train.sampler.state_dict()


def test_resume_without_the_updated_state_says_so_and_goes_on(tmp_path, data, tiny_random_model, caplog):
    """Killed between verl's data.pt and that step's on_batch_end: the step's verdicts are lost, not invented."""
    config = _verl_config(_cfg(tmp_path / "run", tiny_random_model), *data)
    ckpt = Path(config.trainer.default_local_dir)
    trainer = _trainer(config)
    _train(trainer, ckpt, until=SAVE_AT, save_at=SAVE_AT, die_before_update=True)
    before = trainer.train_dataset.sampler.state_dict()  # the sampler as data.pt holds it: step SAVE_AT drawn, not judged
    with caplog.at_level(logging.WARNING):
        resumed = _resumed(config, ckpt, SAVE_AT)
        again = _train(resumed, ckpt, until=SAVE_AT + 1)
    assert "gradus_sampler.json is missing" in caplog.text and f"step {SAVE_AT}'s verdicts" in caplog.text
    assert list(again) == [SAVE_AT + 1]
    restored = resumed.train_dataset.sampler
    assert sum(restored.verdicts) == sum(before["verdicts"]) + PROMPTS * GROUP  # only step SAVE_AT + 1's own


def test_a_step_without_verdicts_stops_the_run(tmp_path, data, tiny_random_model):
    """A trainer that never calls on_batch_end (verl's v1) must not get prompts from a sampler that learns nothing."""
    trainer = _trainer(_verl_config(_cfg(tmp_path / "run", tiny_random_model), *data))
    batches = iter(trainer.train_dataloader)
    next(batches)
    with pytest.raises(RuntimeError, match="on_batch_end"):
        next(batches)


def test_a_dataloader_worker_process_is_refused(tmp_path, data, tiny_random_model):
    """A worker process would hold its own copy of the sampler and prefetch steps ahead of their verdicts."""
    from omegaconf import open_dict

    config = _verl_config(_cfg(tmp_path / "run", tiny_random_model), *data)
    with open_dict(config):
        config.data.dataloader_num_workers = 2  # what verl's default (8) or a user override would give
    with pytest.raises(ConfigError, match="dataloader_num_workers=0"):
        _trainer(config)


@pytest.mark.parametrize("change", ["too_long", "loaded_by_file"])
def test_prompts_verl_drops_stop_the_run_instead_of_vanishing(tmp_path, data, tiny_random_model, change):
    """verl's prompt filter drops a row it finds too long, or cannot process, without an error. The second case
    is the trap the launcher avoids: the plugin loaded by file path (data.custom_cls.path=<file>) is rebuilt in the
    filter's process pool without RLHFDataset's methods, so every row fails. Either way the run must not start."""
    from omegaconf import open_dict

    config = _verl_config(_cfg(tmp_path / "run", tiny_random_model), *data)
    with open_dict(config):
        if change == "too_long":
            config.data.max_prompt_length = 8
        else:
            config.data.custom_cls.path = str(REPO / "rl" / "grpo" / "verl_sampler.py")
    with pytest.raises(ConfigError, match=f"prompt filter dropped {N_SAMPLES}"):
        _trainer(config)


# ----- after the run: the posterior written back (rl/grpo/verl_sampler_writeback.py) -----

@pytest.fixture(scope="module")
def pism_store(tmp_path_factory) -> Path:
    """A difficulty store over the train samples with PISM strata (the same as their tags)."""
    import pandas as pd

    from engine.data.shards import write_shards
    from engine.shaping.store import ScoreSource, build_store

    root = tmp_path_factory.mktemp("sampler_store")
    write_shards(_samples("t", N_SAMPLES), root / "shards")
    rows = [{"id": f"t-{i}", "lambda_star": None, "bucket": STRATA[i % 4] if i % 4 < 3 else None, "unsolved": i % 4 == 3,
             "generations": 10, "error": None, "error_detail": None, "model_id": "tiny", "config_hash": "h", "seed": 0,
             "gradus_version": "0.1.0"} for i in range(N_SAMPLES)]
    (root / "pism").mkdir()
    pd.DataFrame(rows).to_parquet(root / "pism" / "scores.parquet", index=False)
    build_store(root / "store", {"pism": ScoreSource(str(root / "pism"))}, samples=str(root / "shards"))
    return root / "store"


class SimulatedVerl:
    """Stands in for subprocess.run for verl's two child processes (verl cannot train on CPU; SIMULATED, unit-scoped).

    main_ppo: its override set composed in verl's config, the datasets and dataloader built by verl's own code
    (the plugin included), then verl 0.9.1's v0 fit loop in its order, without a model (ray_trainer.fit): step N's
    batch scored by compute_score on the simulated responses; at N % save_freq == 0 or the last step the
    checkpoint (data.pt, the actor folder, the marker); the step's rollouts dumped by verl's own writer
    (`_write_generations`, fed as `_log_rollout_data` feeds it; the decoded prompt is left empty); then, except
    after the last step, on_batch_end. The merger leaves a model folder. `verdicts[step]` are the table's."""

    def __init__(self, real):
        self.real, self.verdicts = real, {}

    def __call__(self, command, *args, **kwargs):
        if "verl.trainer.main_ppo" in command:
            self._fit(validate_overrides(command[3:]))
        elif "verl.model_merger" in command:
            write_merged_model(command)
        else:
            return self.real(command, *args, **kwargs)
        return subprocess.CompletedProcess(command, 0)

    def _fit(self, config) -> None:
        from verl.trainer.ppo.ray_trainer import RayPPOTrainer

        trainer = _trainer(config)
        ckpt, last, t = Path(config.trainer.default_local_dir), config.trainer.total_training_steps, config.trainer
        for batch_dict in trainer.train_dataloader:
            step = trainer.train_dataset.sampler.step
            ids = [info["id"] for info in batch_dict["extra_info"]]
            self.verdicts[step] = ([sid for sid in ids for _ in range(GROUP)], [_passes(sid, step, j) for sid in ids for j in range(GROUP)])
            batch = _scored(batch_dict, step)
            if step % t.save_freq == 0 or step == last:
                (ckpt / f"global_step_{step}" / "actor").mkdir(parents=True)
                torch.save(trainer.train_dataloader.state_dict(), ckpt / f"global_step_{step}" / "data.pt")
                (ckpt / "latest_checkpointed_iteration.txt").write_text(str(step))
            if t.get("rollout_data_dir"):
                rows, sim = batch.non_tensor_batch, batch.meta_info["simulated"]
                gts = [r["ground_truth"] for r in rows["reward_model"]]
                RayPPOTrainer._write_generations([""] * len(batch), sim["responses"], gts, rows["score"].tolist(),
                                                 {k: rows[k].tolist() for k in sim["reward_keys"]}, t.rollout_data_dir, step)
            if step == last:
                return
            trainer.train_dataset.on_batch_end(batch=batch)


def _by_hand(cfg: GrpoJobConfig, data: Path, verdicts: dict, steps) -> dict:
    """The sampler over the same data, given the listed steps' verdicts by hand: its posterior per id."""
    import pyarrow.parquet as pq

    from rl.sampler import build_sampler

    sampler, _ = build_sampler(cfg.sampler, pq.read_table(data).column("extra_info").to_pylist(), cfg.seed)
    for step in steps:
        sampler.update(*verdicts[step])
    return {r["id"]: (r["passes"], r["fails"], r["verdicts"], r["alpha"], r["beta"]) for r in sampler.posterior() if round(r["passes"] + r["fails"]) >= 1}


@pytest.mark.parametrize("save_freq, dump", [(4, True), (10, True), (4, False)], ids=["state+dump", "dump_only", "no_dump"])
def test_verl_run_writes_back_the_posterior_of_every_step(tmp_path, data, tiny_random_model, pism_store, monkeypatch, caplog,
                                                          save_freq, dump):
    """STEPS = 6. save_freq 4: the plugin's state after step 4, steps 5 and 6 (never handed to the plugin) from
    the dump; save_freq 10: no saved state (verl checkpoints only the last step), all six from the dump."""
    import pyarrow.parquet as pq

    from engine.shaping.store import read_store
    from rl.grpo import verl_run

    cfg = _cfg(tmp_path / "run", tiny_random_model, **{"verl.save_freq": save_freq, "sampler.store": str(pism_store),
                                                       "sampler.prior.scorers": "[pism]", "sampler.write_back": "online",
                                                       **({} if dump else {"verl.rollout_data_dir": "''"})})
    write_sampler_settings(cfg)
    verl = SimulatedVerl(subprocess.run)
    monkeypatch.setattr(subprocess, "run", verl)
    with caplog.at_level(logging.WARNING):
        trained = verl_run.train_and_merge(cfg, verl_overrides(cfg, str(data[0]), str(data[1])), tiny_random_model, {"model_id": "tiny"})
    assert sorted(verl.verdicts) == list(range(1, STEPS + 1))
    got = trained["sampler"]
    ckpt = Path(cfg.output_dir).resolve() / "checkpoints"
    assert got["state_file"] == (str(ckpt / "global_step_4" / "gradus_sampler.json") if save_freq == 4 else None)
    held = list(range(1, 5)) if save_freq == 4 else []  # verdicts in the plugin's saved state
    assert got["state_step"] == len(held)
    assert got["replayed_steps"] == ([s for s in range(1, STEPS + 1) if s not in held] if dump else [])
    assert got["missing_steps"] == ([] if dump else [5, 6])

    written = {r["id"]: (r["passes"], r["fails"], r["verdicts"], r["alpha"], r["beta"])
               for r in pq.read_table(got["posterior"]).to_pylist()}
    expected = _by_hand(cfg, data[0], verl.verdicts, range(1, STEPS + 1) if dump else held)
    assert written == expected
    if dump:  # the last step counts: without it the posterior would differ
        assert expected != _by_hand(cfg, data[0], verl.verdicts, range(1, STEPS))
        assert "lacks the verdicts" not in caplog.text
    else:
        assert "lacks the verdicts of steps [5, 6]" in caplog.text and "rollout_data_dir is off" in got["warning"]
    assert got["write_back"]["namespace"] == "pass_rate@online"
    store = {r["id"]: (r["pass_rate@online.pass_rate"], r["pass_rate@online.n"])
             for r in read_store(pism_store, columns=["id", "pass_rate@online.pass_rate", "pass_rate@online.n"]).to_pylist()}
    assert {sid: v for sid, v in store.items() if v[1] is not None} == {
        sid: (s / (s + f), round(s + f)) for sid, (s, f, *_) in expected.items() if round(s + f) >= 1}


def test_verl_write_back_refuses_a_dump_without_sample_ids(tmp_path, data, tiny_random_model, monkeypatch):
    """A rollout the dump cannot tie to a sample (a reward entrypoint that does not return sample_id) stops the
    write-back with a clear error instead of dropping its verdict."""
    import json as _json

    from rl.grpo import verl_run

    cfg = _cfg(tmp_path / "run", tiny_random_model, **{"verl.save_freq": 4})
    write_sampler_settings(cfg)
    verl = SimulatedVerl(subprocess.run)
    monkeypatch.setattr(subprocess, "run", verl)
    real_write = verl_run.sampler_writeback

    def strip_ids(cfg_, checkpoint, meta):
        dump = Path(cfg_.output_dir).resolve() / cfg_.verl.rollout_data_dir / f"{STEPS}.jsonl"
        lines = [_json.loads(x) for x in dump.read_text().splitlines()]
        dump.write_text("".join(_json.dumps({**x, "sample_id": None}) + "\n" for x in lines))
        return real_write(cfg_, checkpoint, meta)

    monkeypatch.setattr(verl_run, "sampler_writeback", strip_ids)
    with pytest.raises(ConfigError, match="sample id"):
        verl_run.train_and_merge(cfg, verl_overrides(cfg, str(data[0]), str(data[1])), tiny_random_model, {"model_id": "tiny"})
