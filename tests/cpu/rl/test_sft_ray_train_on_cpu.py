"""SFT on Ray Train is reproducible: one config, one model (the warm start's cache key relies on it)."""
import pytest


@pytest.mark.slow
def test_two_runs_of_one_config_train_identical_weights(ray_session, tiny_random_model, warm_corpus, tmp_path):
    import torch
    from safetensors.torch import load_file

    from rl.sft.config import SFTConfig
    from rl.sft.ray_train import run_sft

    # The train split is several parquet files: the read's block order is what used to vary.
    assert len(list((warm_corpus / "train").glob("*.parquet"))) > 1
    summaries, weights = [], []
    for run in ("a", "b"):
        cfg = SFTConfig(model_path=str(tiny_random_model), train_data=str(warm_corpus / "train"), output_dir=str(tmp_path / run),
                        epochs=1, max_steps=6, batch_size=8, lr=1e-3, warmup_steps=2, log_every=1, shuffle_buffer=64, seed=3)
        summaries.append(run_sft(cfg))
        weights.append(load_file(tmp_path / run / "model.safetensors"))
    assert summaries[0]["steps"] == summaries[1]["steps"] == 6
    assert summaries[0]["loss_curve"] == summaries[1]["loss_curve"]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    start = load_file(tiny_random_model / "model.safetensors")
    assert any(not torch.equal(start[k], weights[0][k]) for k in start)  # it did train
