"""Selections and presets over a difficulty store: every kind against its definition, seeded random
draws, per-domain quotas, disjoint SFT/GRPO arms, and the difficulty tags reaching verl's extra_info.

Inputs are hand-written: 70 canonical samples built in-process and PISM / CMAB / pass-rate score
files in the pipelines' column layout, from a truth table (`truth`) that the expected sets below
are computed from independently of the code under test.
"""
import glob
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from engine.config import ConfigError, load_config
from engine.data.formats import write_records
from engine.data.sample import ImageRef, Message, Sample
from engine.data.shards import iter_samples, write_shards
from pipelines.shaping.select import SelectJobConfig, run_select
from engine.shaping.store import ScoreSource, build_store
from rl.reward import difficulty_tags

REPO = Path(__file__).resolve().parents[3]
N = 70
DOMAINS = ["chart", "counting", "ocr"]
PISM_KINDS = [("easy", None), ("easy", 0.7), ("mid", 0.5), ("mid", 0.6), ("hard", 0.4), ("hard", 0.1), ("unsolved", 0.0)]
PISM_ERRORS = {13, 27}  # engine errors
UNSCORED = {50, 51, 52, 53}  # no PISM row at all


def truth(i: int) -> dict:
    stratum, lam = PISM_KINDS[i % 7]
    rho = (i % 20) / 10.0
    cmab = "easy" if rho < 0.1 or rho > 1.9 else "hard" if 0.4 <= rho <= 1.6 else "mid"
    if i in PISM_ERRORS:
        stratum, lam = "error", None
    elif i in UNSCORED:
        stratum, lam = "unscored", None
    return {"id": f"q{i:03d}", "domain": DOMAINS[i % 3], "split": "test" if i % 10 == 9 else "train", "pism": stratum, "lambda_star": lam,
            "rho_bar": rho, "cmab": cmab, "pass_rate": (i % 5) / 4}


TRUTH = [truth(i) for i in range(N)]
UNIVERSE = [t for t in TRUTH if t["split"] == "train" and t["pism"] not in ("error", "unscored")]


def ids(rows) -> set[str]:
    return {t["id"] for t in rows}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), "green").save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("select")
    image = png()
    samples = [Sample(t["id"], [ImageRef(image)], [Message("system", "Answer in \\boxed{}."), Message("user", "<image>How many?")],
                      "3", "counting", "count", {}, t["domain"], "synth", t["split"], {"level": 1}) for t in TRUTH]
    write_shards(samples, root / "shards", rows_per_shard=16)
    prov = {"model_id": "tiny", "config_hash": "h", "seed": 0, "gradus_version": "0.1.0"}
    pism = []
    for t in TRUTH:
        if t["pism"] == "unscored":
            continue
        error = "engine_error" if t["pism"] == "error" else None
        unsolved = None if error else t["pism"] == "unsolved"
        bucket = t["pism"] if t["pism"] in ("easy", "mid", "hard") else None
        pism.append({"id": t["id"], "lambda_star": t["lambda_star"], "bucket": bucket, "unsolved": unsolved, "generations": 5,
                     "error": error, "error_detail": error and "boom"} | prov)
    cmab = [{"id": t["id"], "mode": "paper", "rho_bar": t["rho_bar"], "bucket": t["cmab"], "unsolved": False, "response_source": "pism",
             "error": None, "error_detail": None} | prov for t in TRUTH]
    rates = [{"id": t["id"], "pass_rate": t["pass_rate"], "n": 4} | prov for t in TRUTH]
    for name, rows in (("pism", pism), ("cmab", cmab), ("rates", rates)):
        pd.DataFrame(rows).to_parquet(root / f"{name}.parquet", index=False)
    build_store(root / "store", {"pism": ScoreSource(str(root / "pism.parquet")), "cmab": ScoreSource(str(root / "cmab.parquet")),
                                 "pass_rate": ScoreSource(str(root / "rates.parquet"))},
                samples=str(root / "shards"), partition_by=["domain", "pism.stratum"])
    return root / "store"


def select(store: Path, out: Path, *overrides: str, config: str | None = None) -> tuple[dict, dict[str, list[Sample]]]:
    cfg = load_config(SelectJobConfig, config, [f"store={store}", f"output={out}", *overrides])
    record = run_select(cfg)
    written = {name: list(iter_samples(out / "selections" / name)) for name in record["selections"]}
    return record, written


def selected(written: dict[str, list[Sample]]) -> dict[str, set[str]]:
    return {name: {s.id for s in samples} for name, samples in written.items()}


KINDS = [
    "selections.full={kind: fullset}",
    "selections.uns={kind: unsolved}",
    "selections.mid_hard={kind: buckets, buckets: [mid, hard]}",
    "selections.lam_hard={kind: range, column: lambda_star, high: 0.4}",
    "selections.lam_hard_open={kind: range, high: 0.4, high_inclusive: false}",
    "selections.lam_late={kind: range, low: 0.7, null_value: 1.0}",
    "selections.lam_low_unsolved={kind: range, high: 0.1, include_unsolved: true}",
    "selections.rho_band={kind: range, metric: cmab, low: 0.4, high: 1.6}",
    "selections.pass_band={kind: range, metric: pass_rate, low: 0.25, high: 0.75}",
    "selections.cmab_hard_in_mid_hard={kind: buckets, metric: cmab, buckets: [hard], pool: mid_hard}",
    "selections.rand={kind: random, size_of: mid_hard}",
    "selections.rand_domains={kind: random, size_of: mid_hard, match_domains: true}",
    "selections.rand_not_mid_hard={kind: random, size: 10, exclude: [mid_hard]}",
    "selections.capped={kind: fullset, domain_quota: {chart: 3}, domain_quota_default: 5}",
    "selections.hard_short={kind: buckets, buckets: [hard], domain_quota: {chart: 100}}",
]


def test_every_kind_matches_its_definition(store, tmp_path):
    record, written = select(store, tmp_path / "out", *KINDS)
    got = selected(written)
    U = UNIVERSE
    assert got["full"] == ids(U) and record["universe"] == {"rows": len(U), "excluded": {"other_splits": 7, "pism error": 2, "pism unscored": 4}}
    assert got["uns"] == ids(t for t in U if t["pism"] == "unsolved")
    mid_hard = ids(t for t in U if t["pism"] in ("mid", "hard"))
    assert got["mid_hard"] == mid_hard
    lam = [t for t in U if t["pism"] != "unsolved" and t["lambda_star"] is not None]
    assert got["lam_hard"] == ids(t for t in lam if t["lambda_star"] <= 0.4)
    assert got["lam_hard_open"] == ids(t for t in lam if t["lambda_star"] < 0.4) != got["lam_hard"]
    assert got["lam_late"] == ids(t for t in U if t["pism"] == "easy")  # lambda* >= 0.7, or never failing (null -> 1.0)
    assert got["lam_low_unsolved"] == ids(t for t in U if t["pism"] == "unsolved" or t["lambda_star"] == 0.1)
    assert got["rho_band"] == ids(t for t in U if 0.4 <= t["rho_bar"] <= 1.6)
    assert got["pass_band"] == ids(t for t in U if 0.25 <= t["pass_rate"] <= 0.75)
    assert got["cmab_hard_in_mid_hard"] == ids(t for t in U if t["pism"] in ("mid", "hard") and t["cmab"] == "hard")
    # random: the size of mid+hard, from the universe; with match_domains also its mix of domains
    assert len(got["rand"]) == len(mid_hard) and got["rand"] <= ids(U) and got["rand"] != mid_hard
    assert record["selections"]["rand_domains"]["per_domain"] == record["selections"]["mid_hard"]["per_domain"]
    assert len(got["rand_not_mid_hard"]) == 10 and not got["rand_not_mid_hard"] & mid_hard
    # quotas are caps: chart 3, the others 5 each; a quota above what exists is reported, not an error
    assert record["selections"]["capped"]["per_domain"] == {"chart": 3, "counting": 5, "ocr": 5}
    assert got["capped"] <= ids(U)
    hard_chart = len([t for t in U if t["pism"] == "hard" and t["domain"] == "chart"])
    assert record["selections"]["hard_short"]["quota_short"] == {"chart": {"quota": 100, "available": hard_chart}}
    # counts per bucket of every metric
    assert record["selections"]["mid_hard"]["per_stratum"]["pism"] == {
        "hard": len([t for t in U if t["pism"] == "hard"]), "mid": len([t for t in U if t["pism"] == "mid"])}


def test_random_draws_are_seeded_and_size_matched(store, tmp_path):
    spec = ["selections.mid_hard={kind: buckets, buckets: [mid, hard]}", "selections.rand={kind: random, size_of: mid_hard}",
            "selections.capped={kind: fullset, domain_quota_default: 4}"]
    first, w1 = select(store, tmp_path / "a", *spec, "seed=0")
    again, w2 = select(store, tmp_path / "b", *spec, "seed=0")
    other, w3 = select(store, tmp_path / "c", *spec, "seed=1")
    a, b, c = selected(w1), selected(w2), selected(w3)
    assert a == b and a["rand"] != c["rand"] and a["capped"] != c["capped"]
    assert len(a["rand"]) == len(c["rand"]) == len(a["mid_hard"])
    drop = ("output", "wall_s")
    assert {k: v for k, v in first.items() if k not in drop} == {k: v for k, v in again.items() if k not in drop}
    assert first["config_hash"] != other["config_hash"] and first["seed"] == 0 and other["seed"] == 1


def test_paper_preset_gives_disjoint_sft_grpo_arms_of_matched_sizes(store, tmp_path):
    record, written = select(store, tmp_path / "paper", config=str(REPO / "configs" / "select" / "default.yaml"))
    got = selected(written)
    assert record["preset"] == "paper_table4" and len(record["arms"]) == 12
    assert {n for n, a in record["arms"].items() if "sft" not in a} == {"grpo_fullset", "grpo_unsolved", "grpo_random", "grpo_mid_hard"}
    for name, arm in record["arms"].items():
        assert got[arm["grpo"]["selection"]], name
        if "sft" in arm:
            assert not got[arm["sft"]["selection"]] & got[arm["grpo"]["selection"]], name
    size = {name: len(s) for name, s in got.items()}
    assert size["random"] == size["mid_hard"] == size["mid"] + size["hard"]
    assert size["rand_m"] == size["rand_m_excl_hard"] == size["rand_m_excl_rand_h"] == size["mid"]
    assert size["rand_h"] == size["rand_h_excl_mid"] == size["rand_h_excl_rand_m"] == size["hard"]
    assert got["fullset"] == ids(UNIVERSE) and got["unsolved"] == ids(t for t in UNIVERSE if t["pism"] == "unsolved")
    assert record["arms"]["sft_mid_grpo_rand_h"] == {"sft": {"selection": "mid", "path": "selections/mid", "count": size["mid"]},
                                                     "grpo": {"selection": "rand_h_excl_mid", "path": "selections/rand_h_excl_mid",
                                                              "count": size["hard"]}}
    assert set(record["spec"]["selections"]) == set(got) and record["spec"]["arms"]["grpo_random"] == {"grpo": "random", "sft": ""}
    assert (record["seed"], record["gradus_version"], len(record["config_hash"])) == (0, "0.1.0", 16)
    assert json.loads((tmp_path / "paper" / "selection.json").read_text())["config_hash"] == record["config_hash"]
    # the same comparison on another metric is one override
    on_cmab, cmab_written = select(store, tmp_path / "paper-cmab", "metric=cmab", config=str(REPO / "configs" / "select" / "default.yaml"))
    assert selected(cmab_written)["mid_hard"] == ids(t for t in TRUTH if t["split"] == "train" and t["cmab"] in ("mid", "hard"))


def test_difficulty_tags_reach_verl_extra_info(store, tmp_path):
    _, written = select(store, tmp_path / "out", "selections.mid_hard={kind: buckets, buckets: [mid, hard]}")
    samples = written["mid_hard"]
    t = {row["id"]: row for row in TRUTH}
    first = samples[0]
    tag = first.meta["difficulty"]
    assert (tag["scorer"], tag["bucket"], tag["score"], tag["selection"]) == ("pism", t[first.id]["pism"], t[first.id]["lambda_star"], "mid_hard")
    assert tag["metrics"]["cmab"]["rho_bar"] == t[first.id]["rho_bar"] and tag["metrics"]["pass_rate"]["pass_rate"] == t[first.id]["pass_rate"]
    assert tag["metrics"]["pism"]["model_id"] == "tiny" and first.meta["level"] == 1
    (path,) = write_records("verl", samples, tmp_path / "rl.parquet")
    info = pd.read_parquet(path)["extra_info"].iloc[0]
    assert json.loads(info["difficulty"]) == tag and json.loads(info["meta"]) == {"level": 1}
    assert difficulty_tags(info) == {"bucket": t[first.id]["pism"], "difficulty": t[first.id]["lambda_star"], "difficulty_scorer": "pism"}


@pytest.mark.parametrize("overrides, match", [
    (["metric=cmab@big", "preset=grpo_only"], r"metric 'cmab@big' is not in store .* it has \['cmab', 'pass_rate', 'pism'\]"),
    (["selections.x={kind: buckets, buckets: [medium]}"], r"unknown bucket\(s\) \['medium'\] for pism; known: \['easy', 'mid', 'hard', 'unsolved'\]"),
    (["selections.x={kind: unsolved, metric: pass_rate}"], "metric 'pass_rate' has no buckets or unsolved flag"),
    (["selections.x={kind: range, column: bucket, low: 0}"], r"'bucket' is not a numeric column of pism"),
    (["selections.a={kind: fullset}", "arms.bad={sft: a, grpo: a}"], r"arm 'bad': SFT 'a' and GRPO 'a' share \d+ samples"),
    (["selections.a={kind: fullset, pool: b}", "selections.b={kind: fullset, pool: a}"], "cycle: a -> b -> a"),
    (["selections.a={kind: random, size: 1000}"], "random of 1000 from a pool of"),
    (["selections.a={kind: fullset, domain_quota: {charts: 3}}"], r"unknown domain\(s\) \['charts'\]"),
])
def test_mistakes_are_clear_errors(store, tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        select(store, tmp_path / "out", *overrides)
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("overrides, match", [
    (["selections.a={kind: range, buckets: [mid], low: 0}"], r"selection 'a': \['buckets'\] apply to kind 'buckets' only, not 'range'"),
    (["selections.a={kind: random}"], "exactly one of size"),
    (["selections.a={kind: fullset, metric: pism}"], "takes no metric"),
    (["selections.a={kind: sideways}"], "not one of"),
    (["selections.a={kind: fullset}", "arms.x={grpo: b}"], r"arm 'x': grpo selection 'b' is not defined"),
    (["preset=grpo_only", "selections.random={kind: fullset}"], r"\['random'\] are defined by preset 'grpo_only'"),
    (["preset=table9"], "unknown preset 'table9'"),
    (["splits=[training]"], "subset of"),
])
def test_config_mistakes_fail_at_load(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(SelectJobConfig, None, ["store=s", "output=o", *overrides])


def test_output_guard_and_every_shipped_config_loads(store, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no earlier selection"):
        select(store, busy, "selections.a={kind: fullset}")
    select(store, tmp_path / "out", "selections.a={kind: fullset}")
    record, _ = select(store, tmp_path / "out", "selections.b={kind: unsolved}")  # an earlier selection is replaced whole
    assert sorted(p.name for p in (tmp_path / "out" / "selections").iterdir()) == ["b"] and list(record["selections"]) == ["b"]
    configs = sorted(glob.glob(str(REPO / "configs" / "select" / "*.yaml")))
    assert len(configs) >= 4
    for path in configs:
        cfg = load_config(SelectJobConfig, path)
        assert cfg.preset or cfg.selections, path
