"""Curr-ReFT stage reformulation: open samples -> judge (yes/no) and choice (letter) variants.

- judge: "<question>\\nProposed answer: X\\nIs the proposed answer correct?" (boxes: "Proposed box"),
  answer yes/no, verifier `yesno`. Per task exactly `yes_share` of the variants show the truth
  (error diffusion over a seeded order), the rest a checked distractor.
- choice: "<question>\\nOptions:\\nA. ..\\nB. .." answered with letters, verifier `choice` (set
  semantics, `options` for the range check). One correct option; for multi-label sources (the
  `labels` verifier) the options are single labels and every true label must be picked.
- open: the source itself, tagged with its stage.

Variants keep the source's split and images, and distractors come only from that split
(engine/shaping/distractors.py). Sources that cannot be recast come back as quarantine records.
"""
from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pyarrow.parquet as pq

from engine import __version__
from engine.config import ConfigError, config_hash
from engine.data.images import ImagePolicy
from engine.data.reasons import QuarantineRecord, Reason, SampleError
from engine.data.response import format_response
from engine.data.sample import IMAGE_PLACEHOLDER, SAMPLE_SCHEMA, SPLITS, Message, Sample, validate_sample
from engine.data.shards import shard_paths, validate_all, write_quarantine, write_shards
from engine.publish import publish_dir
from engine.shaping.distractors import (
    SUPPORTED_VERIFIERS,
    AnswerPool,
    Distractor,
    find_distractors,
    find_wrong_labels,
    seeded_rng,
    split_labels,
)
from engine.verifiers import verify
from engine.verifiers.text import parse_choice

STAGES = ("judge", "choice", "open")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BALANCE_TOLERANCE = 0.05  # issue 6: the yes share per task stays within 45-55 % (yes_share 0.5 +- 0.05)

# Sentences of the open question that fix the open answer's format; a recast question drops them
# (a yes/no stage must never demand a box: the original Curr-ReFT bug).
DEFAULT_DROP_SENTENCES = [
    r"\\boxed",
    r"</?(?:answer|think|thinking)>",
    r"^(?:please\s+)?(?:give|output|return|provide|draw|mark)\b.*\b(?:box|boxes|coordinates)\b",
    r"^(?:please\s+)?(?:answer|respond|reply)\s+(?:with|in|using|only)\b",
]


class ReformulateReason(str, Enum):
    """Why a source got no variant of a stage (the quarantine record's reason)."""

    UNSUPPORTED_VERIFIER = "unsupported_verifier"  # no way to vary or compare its answers
    NOT_OPEN = "not_open"  # already a judge/choice sample: variants are built from open samples
    TRUTH_NOT_VERIFIABLE = "truth_not_verifiable"  # the truth does not pass its own verifier
    NO_DISTRACTOR = "no_distractor"  # judge: no wrong candidate in the pool or by perturbation
    TOO_FEW_OPTIONS = "too_few_options"  # choice: fewer than min_choice_options options
    SPLIT_LEAK = "split_leak"  # the source id appears in more than one split
    INVALID_VARIANT = "invalid_variant"  # the built variant fails validation or its own verifier


@dataclass
class StagePrompts:
    judge: str = " Answer yes or no."  # appended to judge questions (asks for yes/no, never for a box)
    choice: str = " Answer with the letter of the correct option."  # appended to single-answer choice questions
    multi_choice: str = " Select every correct option and answer with their letters, e.g. A, C."  # multi-label choice questions
    answer_instruction: str = " Put the final answer in \\boxed{}."  # the answer template (engine/data/response.py), not a bounding box
    drop_sentences: list[str] = field(default_factory=lambda: list(DEFAULT_DROP_SENTENCES))  # regexes: open-format sentences removed before recasting

    def validate(self) -> None:
        for pattern in self.drop_sentences:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"reformulate.prompts.drop_sentences: bad regex {pattern!r}: {exc}") from exc


@dataclass
class ReformulateConfig:
    stages: list[str] = field(default_factory=lambda: list(STAGES))  # which stages to build: judge, choice, open
    seed: int = 0  # seeds distractor draws, option order and the yes/no assignment
    choice_options: int = 4  # options per choice question (multi-label: true labels + at least one wrong label)
    min_choice_options: int = 2  # fewer available options -> quarantined (too_few_options)
    yes_share: float = 0.5  # share of judge variants per task whose shown answer is the truth
    max_candidates: int = 200  # distractor candidates judged per source before giving up
    prompts: StagePrompts = field(default_factory=StagePrompts)

    def validate(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown or not self.stages or len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"reformulate.stages: {self.stages} must be distinct names from {STAGES}")
        if not 2 <= self.min_choice_options <= self.choice_options <= len(LETTERS):
            raise ConfigError(f"reformulate: need 2 <= min_choice_options <= choice_options <= {len(LETTERS)}")
        if not 0.0 <= self.yes_share <= 1.0:
            raise ConfigError("reformulate.yes_share must be in [0, 1]")
        if self.max_candidates < 1:
            raise ConfigError("reformulate.max_candidates must be >= 1")
        self.prompts.validate()


@dataclass
class ReformulateResult:
    stages: dict[str, list[Sample]]  # stage -> variants, in input order
    quarantined: list[QuarantineRecord]  # source field: "reformulate:<stage>"
    config_hash: str
    seed: int
    yes_share: float = 0.5  # the balance target the summary checks against

    def summary(self) -> dict[str, Any]:
        judge = self.stages.get("judge", [])
        choice = self.stages.get("choice", [])
        balance = judge_balance(judge)
        out_of_band = [t for t, b in balance.items() if abs(b["yes_share"] - self.yes_share) > BALANCE_TOLERANCE + 1e-9]
        quarantined: dict[str, Counter] = defaultdict(Counter)
        for q in self.quarantined:
            quarantined[q.source.removeprefix("reformulate:")][q.reason] += 1
        return {
            "counts": {stage: _counts(rows) for stage, rows in self.stages.items()},
            "judge_balance": balance,
            "judge_balance_per_split": {split: judge_balance([s for s in judge if s.split == split]) for split in _splits(judge)},
            "balance_ok": not out_of_band,
            "unbalanced_tasks": out_of_band,
            "choice_options": dict(sorted(Counter(str(len(s.verifier_params["options"])) for s in choice).items())),
            "multi_select": sum(1 for s in choice if s.meta["curr_reft"]["multi_select"]),
            "distractor_methods": {stage: dict(Counter(s.meta["curr_reft"]["distractor_method"] for s in rows)) for stage, rows in self.stages.items() if stage != "open"},
            "quarantined": {stage: dict(c) for stage, c in sorted(quarantined.items())},
            "seed": self.seed,
            "config_hash": self.config_hash,
        }


# ----- questions and prompts -------------------------------------------------------------------

def recast_question(question: str, drop_sentences: Sequence[str]) -> str:
    """The open question without the sentences that fix the open answer's format (kept whole when
    nothing else would remain). Sentences holding an image placeholder always stay."""
    patterns = [re.compile(p, re.IGNORECASE) for p in drop_sentences]
    pieces = re.split(r"(?<=[.?!])(\s+)", question.strip())
    kept = []
    for i in range(0, len(pieces), 2):
        sentence, gap = pieces[i], pieces[i + 1] if i + 1 < len(pieces) else ""
        if IMAGE_PLACEHOLDER in sentence or not any(p.search(sentence) for p in patterns):
            kept.append(sentence + gap)
    text = "".join(kept).strip()
    return text if text.replace(IMAGE_PLACEHOLDER, "").strip() else question.strip()


def question_stem(question: str) -> str:
    """First two words of the question ("what color", "how many"): groups answers of one kind."""
    return " ".join(re.findall(r"[a-z]+", question.replace(IMAGE_PLACEHOLDER, " ").lower())[:2])


def judge_prompt(question: str, candidate: str, verifier: str, prompts: StagePrompts) -> str:
    if verifier == "iou":
        body = f"{question}\nProposed box: {candidate}\nIs this box correct?"
    elif verifier == "detection":
        body = f"{question}\nProposed boxes: {candidate}\nAre these boxes correct?"
    else:
        body = f"{question}\nProposed answer: {candidate}\nIs the proposed answer correct?"
    return body + prompts.judge + prompts.answer_instruction


def choice_prompt(question: str, options: Sequence[str], multi: bool, prompts: StagePrompts) -> str:
    # Options that read as letters themselves ("Which bar is the tallest?" -> B) are quoted, so
    # 'A. "B"' cannot be misread; the verifier reads a bare answer as letters first anyway.
    quote = any(parse_choice(text) is not None for text in options)
    lines = "\n".join(f"{LETTERS[i]}. {json.dumps(text, ensure_ascii=False) if quote else text}" for i, text in enumerate(options))
    suffix = (prompts.multi_choice if multi else prompts.choice) + prompts.answer_instruction
    return f"{question}\nOptions:\n{lines}\n{suffix.strip()}"


def _with_question(source: Sample, content: str) -> list[Message]:
    """The source's prompt turns with the last user turn replaced (an assistant target is dropped:
    it answers the open question, not this one)."""
    messages = list(source.prompt_messages)
    last_user = max(i for i, m in enumerate(messages) if m.role == "user")
    messages[last_user] = Message("user", content)
    return messages


# ----- provenance and checks -------------------------------------------------------------------

def _variant(source: Sample, stage: str, content: str | None, answer: str, verifier: str, params: dict[str, Any],
             provenance: dict[str, Any], seed: int, chash: str) -> Sample:
    curr_reft = {
        **source.meta.get("curr_reft", {}),
        "stage": stage,
        "variant": stage,
        "source_id": source.id,
        "seed": seed,
        "config_hash": chash,
        "gradus_version": __version__,
        **provenance,
    }
    return Sample(
        id=source.id if stage == "open" else f"{source.id}#{stage}",
        images=list(source.images),
        messages=list(source.messages) if content is None else _with_question(source, content),
        answer=answer,
        task=source.task,
        verifier=verifier,
        verifier_params=params,
        domain=source.domain,
        source=source.source,
        split=source.split,
        meta={**source.meta, "curr_reft": curr_reft},
    )


def variant_verifies(sample: Sample) -> bool:
    """The variant's expected answer, written with the training template, passes its own verifier."""
    return verify(sample.verifier, format_response(sample.answer), sample.answer, sample.verifier_params).passed


def _quarantine(stage: str, sample: Sample, reason: str, detail: str) -> QuarantineRecord:
    raw = json.dumps({"task": sample.task, "verifier": sample.verifier, "split": sample.split, "answer": sample.answer[:200]})
    return QuarantineRecord(reason, detail, f"reformulate:{stage}", sample.id, raw)


def _blocker(source: Sample) -> tuple[str, str] | None:
    """Why no judge/choice variant can be built from this source at all, or None."""
    stage = source.meta.get("curr_reft", {}).get("stage")
    if stage in ("judge", "choice"):
        return ReformulateReason.NOT_OPEN.value, f"source is a {stage} sample"
    if source.verifier not in SUPPORTED_VERIFIERS:
        return ReformulateReason.UNSUPPORTED_VERIFIER.value, f"verifier {source.verifier!r}; supported: {sorted(SUPPORTED_VERIFIERS)}"
    result = verify(source.verifier, format_response(source.answer), source.answer, source.verifier_params)
    if not result.passed:
        return ReformulateReason.TRUTH_NOT_VERIFIABLE.value, result.reason or "the truth fails its own verifier"
    return None


def _method(distractors: Iterable[Distractor]) -> str:
    return "+".join(sorted({d.method for d in distractors})) or "none"


# ----- judge: balanced yes/no ------------------------------------------------------------------

def _split_rank(split: str) -> tuple[int, str]:
    return (SPLITS.index(split) if split in SPLITS else len(SPLITS), split)


def yes_ids(sources: Sequence[Sample], seed: int, yes_share: float) -> set[str]:
    """Ids whose judge variant shows the truth: per task, error diffusion along a seeded order
    (split by split), so every task, and every split within it, is within one variant of yes_share."""
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for s in sources:
        by_task[s.task].append(s)
    chosen = set()
    for items in by_task.values():
        items.sort(key=lambda s: (_split_rank(s.split), seeded_rng(seed, s.id, "balance").random(), s.id))
        for i, s in enumerate(items):
            if math.floor((i + 1) * yes_share + 0.5) > math.floor(i * yes_share + 0.5):
                chosen.add(s.id)
    return chosen


def judge_variant(source: Sample, question: str, distractor: Distractor, show_truth: bool, cfg: ReformulateConfig, chash: str) -> Sample:
    candidate = source.answer if show_truth else distractor.text
    provenance = {
        "distractor_method": "none" if show_truth else distractor.method,
        "distractor_ids": [] if show_truth or not distractor.from_id else [distractor.from_id],
        "candidate": candidate,
        "candidate_is_truth": show_truth,
        "source_verifier": source.verifier,
        "source_params": dict(source.verifier_params),
        "source_answer": source.answer,
        "multi_select": False,
    }
    content = judge_prompt(question, candidate, source.verifier, cfg.prompts)
    return _variant(source, "judge", content, "yes" if show_truth else "no", "yesno", {}, provenance, cfg.seed, chash)


def judge_balance(samples: Iterable[Sample]) -> dict[str, dict[str, Any]]:
    """Yes/no counts and yes share of judge variants, per task."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for s in samples:
        if s.meta.get("curr_reft", {}).get("stage") == "judge":
            counts[s.task][s.answer] += 1
    return {task: {"yes": c["yes"], "no": c["no"], "yes_share": round(c["yes"] / max(1, c["yes"] + c["no"]), 4)} for task, c in sorted(counts.items())}


# ----- choice: letters -------------------------------------------------------------------------

def choice_variant(source: Sample, question: str, wrong: Sequence[Distractor], cfg: ReformulateConfig, chash: str) -> Sample:
    multi = source.verifier == "labels"
    truths = split_labels(source.answer)[0] if multi else [source.answer]
    entries = [(text, True, Distractor(text, "truth")) for text in truths] + [(d.text, False, d) for d in wrong]
    order = seeded_rng(cfg.seed, source.id, "choice").permutation(len(entries))
    options = [entries[i] for i in order]
    correct = [LETTERS[i] for i, (_, ok, _) in enumerate(options) if ok]
    provenance = {
        "distractor_method": _method(wrong),
        "distractor_ids": sorted({d.from_id for d in wrong if d.from_id}),
        "option_methods": [d.method for _, _, d in options],
        "correct": correct,
        "multi_select": multi,
        "source_verifier": source.verifier,
        "source_params": dict(source.verifier_params),
        "source_answer": source.answer,
    }
    texts = [text for text, _, _ in options]
    content = choice_prompt(question, texts, multi, cfg.prompts)
    return _variant(source, "choice", content, ", ".join(correct), "choice", {"options": texts}, provenance, cfg.seed, chash)


def _choice_distractors(source: Sample, pool: AnswerPool, found: list[Distractor], cfg: ReformulateConfig) -> list[Distractor]:
    if source.verifier != "labels":
        return found[: cfg.choice_options - 1]
    true_labels = len(split_labels(source.answer)[0])
    want = max(1, cfg.choice_options - true_labels)
    return find_wrong_labels(source, pool, min(want, len(LETTERS) - true_labels), seeded_rng(cfg.seed, source.id, "labels"))


# ----- leakage guard ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitLeak:
    source_id: str
    splits: tuple[str, ...]
    via: str  # "source": one source id in several splits; "distractor": an answer drawn from another split
    variant_id: str = ""  # for via="distractor": the variant showing it


class SplitLeakError(ValueError):
    def __init__(self, leaks: Sequence[SplitLeak]):
        shown = "; ".join(f"{leak.source_id} in {'/'.join(leak.splits)} ({leak.via}{': ' + leak.variant_id if leak.variant_id else ''})" for leak in leaks[:10])
        super().__init__(f"{len(leaks)} split leak(s): {shown}")
        self.leaks = list(leaks)


def source_id_of(sample: Sample) -> str:
    return sample.meta.get("curr_reft", {}).get("source_id") or sample.id


def find_split_leaks(samples: Iterable[Sample]) -> list[SplitLeak]:
    """Source ids present in more than one split, and variants showing an answer of a sample from
    another split (checked when that sample is among the scanned ones)."""
    samples = list(samples)
    splits_of: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        splits_of[source_id_of(s)].add(s.split)
    leaks = [SplitLeak(sid, tuple(sorted(sp)), "source") for sid, sp in sorted(splits_of.items()) if len(sp) > 1]
    for s in samples:
        for other in s.meta.get("curr_reft", {}).get("distractor_ids", []):
            if splits_of.get(other, {s.split}) != {s.split}:
                leaks.append(SplitLeak(other, tuple(sorted(splits_of[other] | {s.split})), "distractor", s.id))
    return leaks


def assert_no_split_leakage(samples: Iterable[Sample]) -> None:
    leaks = find_split_leaks(samples)
    if leaks:
        raise SplitLeakError(leaks)


# ----- the whole reformulation -----------------------------------------------------------------

def _admit(sources: Sequence[Sample], stages: Sequence[str]) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Sources fit to reformulate; the rest quarantined for every stage: ids in several splits (a
    variant would cross), repeated ids, structurally invalid samples."""
    leaking = {leak.source_id for leak in find_split_leaks(sources)}
    usable, quarantined, seen = [], [], set()
    for s in sources:
        problem = _admission_problem(s, leaking, seen)
        if problem:
            quarantined += [_quarantine(stage, s, *problem) for stage in stages]
            continue
        seen.add(s.id)
        usable.append(s)
    return usable, quarantined


def _admission_problem(source: Sample, leaking: set[str], seen: set[str]) -> tuple[str, str] | None:
    try:
        validate_sample(source, decode=False)
    except SampleError as err:
        return err.reason.value, err.detail
    if source.id in leaking:
        return ReformulateReason.SPLIT_LEAK.value, "source id in several splits"
    if source.id in seen:
        return Reason.DUPLICATE_ID.value, source.id
    return None


def open_variant(source: Sample, cfg: ReformulateConfig, chash: str) -> Sample:
    """The source as the open stage's sample: unchanged but for its stage and provenance."""
    provenance = {"distractor_method": "none", "distractor_ids": [], "multi_select": False}
    return _variant(source, "open", None, source.answer, source.verifier, dict(source.verifier_params), provenance, cfg.seed, chash)


def reformulate(sources: Sequence[Sample], cfg: ReformulateConfig) -> ReformulateResult:
    """Open sources -> the configured stages' variants (input order) + quarantine records."""
    cfg.validate()
    chash = config_hash(cfg)
    usable, quarantined = _admit(sources, cfg.stages)
    questions = {s.id: recast_question(s.question, cfg.prompts.drop_sentences) for s in usable}
    stems = {sid: question_stem(q) for sid, q in questions.items()}
    pool = AnswerPool(usable, stems)

    built: dict[str, list[Sample]] = {stage: [] for stage in cfg.stages}
    judge_ready: list[tuple[Sample, Distractor]] = []
    for s in usable:
        if "open" in built:
            if s.meta.get("curr_reft", {}).get("stage") in ("judge", "choice"):
                quarantined.append(_quarantine("open", s, ReformulateReason.NOT_OPEN.value, "not an open sample"))
            else:
                built["open"].append(open_variant(s, cfg, chash))
        wanted = [stage for stage in ("judge", "choice") if stage in built]
        if not wanted:
            continue
        blocker = _blocker(s)
        if blocker:
            quarantined += [_quarantine(stage, s, *blocker) for stage in wanted]
            continue
        want, at_least = (cfg.choice_options - 1, cfg.min_choice_options - 1) if "choice" in built else (1, 1)
        found = find_distractors(s, pool, stems[s.id], want, seeded_rng(cfg.seed, s.id, "distractors"), at_least, cfg.max_candidates)
        if "judge" in built:
            if found:
                judge_ready.append((s, found[0]))
            else:
                quarantined.append(_quarantine("judge", s, ReformulateReason.NO_DISTRACTOR.value, "no wrong candidate passed the verifier check"))
        if "choice" in built:
            wrong = _choice_distractors(s, pool, found, cfg)
            n_options = len(wrong) + (len(split_labels(s.answer)[0]) if s.verifier == "labels" else 1)
            if wrong and n_options >= cfg.min_choice_options:
                built["choice"].append(choice_variant(s, questions[s.id], wrong, cfg, chash))
            else:
                quarantined.append(_quarantine("choice", s, ReformulateReason.TOO_FEW_OPTIONS.value,
                                               f"{n_options} option(s), need {cfg.min_choice_options}"))
    if "judge" in built:
        shown = yes_ids([s for s, _ in judge_ready], cfg.seed, cfg.yes_share)
        built["judge"] = [judge_variant(s, questions[s.id], d, s.id in shown, cfg, chash) for s, d in judge_ready]

    for stage, rows in built.items():
        built[stage] = _checked(stage, rows, quarantined)
    assert_no_split_leakage([v for rows in built.values() for v in rows])
    return ReformulateResult(built, quarantined, chash, cfg.seed, cfg.yes_share)


def _checked(stage: str, rows: list[Sample], quarantined: list[QuarantineRecord]) -> list[Sample]:
    """Keep variants that are valid samples and pass their own verifier; quarantine the rest."""
    good = []
    for v in rows:
        try:
            validate_sample(v, decode=False)
        except SampleError as err:
            quarantined.append(_quarantine(stage, v, err.reason.value, err.detail))
            continue
        if stage != "open" and not variant_verifies(v):
            quarantined.append(_quarantine(stage, v, ReformulateReason.INVALID_VARIANT.value, "expected answer fails its verifier"))
            continue
        good.append(v)
    return good


# ----- shards in, stage shards out (`gradus data reformulate`, `reformulate:` data references) ---

def read_sources(path: str | Path) -> tuple[list[Sample], list[QuarantineRecord]]:
    """Rows of every shard under `path` -> structurally valid samples + quarantine records (file:row).
    Images are carried, not decoded: variants reuse their source's images unchanged."""

    def rows() -> Iterator[tuple[str, Sample | SampleError, object]]:
        for shard in shard_paths(path):
            for index, row in enumerate(pq.read_table(shard, schema=SAMPLE_SCHEMA).to_pylist()):
                where = f"{shard}:{index}"
                try:
                    yield where, Sample.from_row(row), None
                except SampleError as err:
                    yield where, err, {k: v for k, v in row.items() if k != "images"}

    return validate_all(rows(), ImagePolicy(), decode=False)


def _publish_stage(out: Path, stage: str, rows: list[Sample], splits: list[str], rows_per_shard: int) -> dict[str, int]:
    """Write one stage's shards per split into a temporary folder, then swap it in for the old one."""
    with publish_dir(out / stage, partial=out / f".{stage}.tmp") as tmp:  # hidden: out/ lists only the stages
        written = {split: len(write_shards([s for s in rows if s.split == split], tmp / split, rows_per_shard=rows_per_shard))
                   for split in splits}
    return written


def reformulate_shards(source: str | Path, output: str | Path, cfg: ReformulateConfig, *, rows_per_shard: int = 512) -> dict[str, Any]:
    """Every shard under `source` (each variant stays in its source's split) -> `output/<stage>/<split>/
    part-*.parquet` and `output/quarantine/quarantine.parquet` (bad input rows and sources without a
    variant, each with a reason); returns the counts. Stage folders are replaced whole, and a stage
    or quarantine file this run did not make is removed, so a rerun never mixes two runs' shards."""
    sources, bad_input = read_sources(source)
    result = reformulate(sources, cfg)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    splits = sorted({s.split for s in sources})
    shard_files = {stage: _publish_stage(out, stage, rows, splits, rows_per_shard) for stage, rows in result.stages.items()}
    for stage in set(STAGES) - set(result.stages):
        shutil.rmtree(out / stage, ignore_errors=True)
    (out / "quarantine" / "quarantine.parquet").unlink(missing_ok=True)
    quarantine_file = write_quarantine(bad_input + result.quarantined, out)
    return {
        "input": str(source),
        "output": str(out),
        "sources": len(sources),
        "bad_input": dict(Counter(q.reason for q in bad_input)),
        **result.summary(),  # counts, judge balance, quarantined per stage, seed, config_hash
        "shard_files": shard_files,
        "quarantine_file": str(quarantine_file) if quarantine_file else None,
    }


# ----- small report helpers --------------------------------------------------------------------

def _splits(samples: Iterable[Sample]) -> list[str]:
    return sorted({s.split for s in samples}, key=_split_rank)


def _counts(rows: Sequence[Sample]) -> dict[str, Any]:
    return {
        "total": len(rows),
        "per_split": {split: sum(1 for s in rows if s.split == split) for split in _splits(rows)},
        "per_task": dict(sorted(Counter(s.task for s in rows).items())),
    }
