"""Benchmark: verifier throughput on a mixed batch, and hostile outputs handled within the time bound.

Writes benchmarks/results/verifiers.json:
  {"calls_per_s": ..., "hostile_handled": ..., ...}
- calls_per_s: `verify_many` over 10k mixed outputs (all ten verifiers, correct / wrong / malformed
  answers; math through the isolated worker pool). Baseline, same run and same batch: one
  `verify` call after another (math waits for each worker round trip), reported as a ratio.
- hostile_handled: fraction of hostile outputs (bignum towers, deep nesting, megabyte strings,
  thousands of tags or boxes, pathological whitespace) whose call returned a result (judged or
  with a reason) within the bound: the verifier's timeout for isolated verifiers plus worker
  restart, a fixed bound for inline ones.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INLINE_BOUND_S = 1.0  # inline verifiers are linear in their capped input; 1 s is generous

B = "\\boxed{{{}}}".format


def mixed_batch(n: int, seed: int = 0) -> list[tuple[str, str, str, dict]]:
    rng = random.Random(seed)
    img = {"image_size": [448, 448]}
    cases = [
        ("numeric", lambda: (B(str(v := rng.randint(0, 99))), str(v if rng.random() < 0.5 else v + 1), {})),
        ("count", lambda: (B(rng.choice(["3", "three", "4", "x"])), "3", {})),
        ("exact", lambda: (B(rng.choice(["Red", "blue", "dark red"])), "red", {})),
        ("yesno", lambda: (f"<think>hm</think><answer>{rng.choice(['yes', 'no', 'maybe'])}</answer>", "yes", {})),
        ("choice", lambda: (B(rng.choice(["A", "A, C", "c a", "a cat"])), "A,C", {})),
        ("ocr", lambda: (B("".join(rng.choice("abcde") for _ in range(8))), "abcdeabc", {"max_distance": 0.25})),
        ("labels", lambda: (B(", ".join(rng.sample(["cat", "dog", "bird", "fox"], rng.randint(1, 3)))), "cat, dog", {"threshold": 0.5})),
        ("iou", lambda: (B(str([x := rng.randint(0, 200), y := rng.randint(0, 200), x + rng.randint(1, 200), y + rng.randint(1, 200)])), "[50, 50, 150, 150]", img)),
        ("detection", lambda: ("<answer>" + json.dumps([{"bbox_2d": [x := rng.randint(0, 300), y := rng.randint(0, 300), x + 60, y + 60], "label": "cat"} for _ in range(rng.randint(0, 4))]) + "</answer>",
                               json.dumps([{"bbox_2d": [10, 10, 70, 70], "label": "cat"}, {"bbox_2d": [200, 200, 260, 260], "label": "cat"}]), {**img, "threshold": 0.5})),
        ("math", lambda: (B(rng.choice(["\\frac{1}{2}", "0.5", "2/4", "\\sqrt{2}", "x+1", "3"])), "\\frac{1}{2}", {})),
    ]
    out = []
    for i in range(n):
        name, make = cases[i % len(cases)]
        output, truth, params = make()
        out.append((name, output, truth, params))
    rng.shuffle(out)
    return out


def hostile_batch() -> list[tuple[str, str, str, dict]]:
    big = "9" * 5000
    nested = "{" * 20000 + "}" * 20000
    items = [
        ("math", B("10^{10^{10^{10}}}"), "5", {"timeout_s": 2}),
        ("math", B("9^{9^{9^{9^{9}}}}!"), "1", {"timeout_s": 2}),
        ("math", B("\\frac{" * 500 + "1" + "}{2}" * 500), "1", {"timeout_s": 2}),
        ("math", B("(" * 3000 + "1" + ")" * 3000), "1", {"timeout_s": 2}),
        ("math", B(big), "1", {"timeout_s": 2}),
        ("math", "\\boxed" + nested, "1", {"timeout_s": 2}),
        ("math", "<answer>" * 100000, "1", {"timeout_s": 2}),
        ("numeric", B(big), "1", {}),
        ("numeric", B("1" + "0" * 400 + "/3"), "1", {}),
        ("numeric", "\\boxed{" * 100000, "1", {}),
        ("exact", "x" * 2_000_000 + B("red"), "red", {}),
        ("exact", "<answer>" * 200000 + "</answer>", "red", {}),
        ("choice", B(" " * 3000 + "A" + " ," * 1000), "A", {}),
        ("choice", B("A" + " and" * 900), "A", {}),
        ("ocr", B("a" * 4000), "b" * 4000, {}),
        ("labels", B("[" * 3000 + "]" * 3000), "cat", {}),
        ("labels", B(",".join(["cat"] * 2000)), "cat", {}),
        ("iou", B("[" * 5000 + "]" * 5000), "[1, 1, 5, 5]", {"image_size": [10, 10]}),
        ("iou", B("[1e309, 0, 1, 1]"), "[1, 1, 5, 5]", {"image_size": [10, 10]}),
        ("iou", B("[" + big + ", 0, 1, 1]"), "[1, 1, 5, 5]", {"image_size": [10, 10]}),
        ("detection", B(json.dumps([[0, 0, 1, 1]] * 5000)), "[[0, 0, 1, 1]]", {"image_size": [10, 10]}),
        ("detection", B(json.dumps([[i, i, i + 1, i + 1] for i in range(100)])), json.dumps([[i, i, i + 1, i + 1] for i in range(100)]), {"image_size": [200, 200]}),
        ("detection", B("{'bbox_2d': " * 400 + "1" + "}" * 400), "[[0, 0, 1, 1]]", {"image_size": [10, 10]}),
        # under the 4096-char answer cap, so the parsers themselves are exercised
        ("math", B("(" * 1500 + "1" + ")" * 1500), "1", {"timeout_s": 2}),
        ("math", B("\\frac{" * 300 + "1" + "}{2}" * 300), "1", {"timeout_s": 2}),
        ("math", B("{" * 1800 + "}" * 1800), "1", {"timeout_s": 2}),
        ("math", B("1" * 4000), "1", {"timeout_s": 2}),
        ("math", B("x^" * 1300 + "2"), "1", {"timeout_s": 2}),
        ("numeric", B("1" * 4000), "1", {}),
        ("labels", B("[" * 2000 + "]" * 2000), "cat", {}),
        ("iou", B("[" * 2000 + "]" * 2000), "[1, 1, 5, 5]", {"image_size": [10, 10]}),
        ("iou", B("[" + "9" * 4000 + ", 0, 1, 1]"), "[1, 1, 5, 5]", {"image_size": [10, 10]}),
        ("detection", B("{'bbox_2d': " * 300 + "1" + "}" * 300), "[[0, 0, 1, 1]]", {"image_size": [10, 10]}),
        ("choice", B(" " * 2000 + "A" + " ," * 1000), "A", {}),
        ("ocr", B("a" * 4000), "b" * 4000, {"max_answer_chars": 4096}),
        ("yesno", B("\u0000\udcff" * 1000), "yes", {}),
        ("count", B("\u0663"), "3", {}),  # Arabic-Indic digit three
    ]
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "verifiers.json"))
    args = parser.parse_args()

    from engine import __version__
    from engine.verifiers import VERIFIERS, verify, verify_many
    from engine.verifiers.guard import RUNNER, WORKERS

    batch = mixed_batch(args.n)
    verify("math", B("1"), "1")  # start the worker pool outside the timed region
    t0 = time.perf_counter()
    results = verify_many(batch)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    baseline = [verify(*c) for c in batch]
    baseline_s = time.perf_counter() - t0
    assert [r.passed for r in results] == [r.passed for r in baseline], "verify_many and verify disagree"
    reasons: dict[str, int] = {}
    for r in results:
        key = r.reason.split(":")[0] or "judged"
        reasons[key] = reasons.get(key, 0) + 1

    hostile = []
    for name, output, truth, params in hostile_batch():
        bound = float(params.get("timeout_s", 5)) * 2 + 5.0 if VERIFIERS[name].isolated else INLINE_BOUND_S  # + worker restart
        t0 = time.perf_counter()
        r = verify(name, output, truth, params)
        took = time.perf_counter() - t0
        hostile.append({"verifier": name, "output_chars": len(output), "seconds": round(took, 4), "bound_s": bound,
                        "handled": took <= bound and isinstance(r.reason, str) and 0.0 <= r.score <= 1.0,
                        "passed": r.passed, "reason": r.reason[:80]})
    RUNNER.close()

    record = {
        "calls_per_s": round(len(batch) / batch_s, 1),
        "hostile_handled": sum(h["handled"] for h in hostile) / len(hostile),
        "baseline": "sequential verify() calls on the same batch, same run",
        "baseline_calls_per_s": round(len(batch) / baseline_s, 1),
        "speedup_vs_baseline": round(baseline_s / batch_s, 2),
        "n_calls": len(batch),
        "per_verifier_calls": {n: sum(1 for c in batch if c[0] == n) for n in sorted(VERIFIERS)},
        "outcomes": dict(sorted(reasons.items())),
        "pass_rate": round(sum(r.passed for r in results) / len(results), 4),
        "isolated_workers": WORKERS,
        "hostile": hostile,
        "gradus_version": __version__,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "hostile"}, indent=2))
    print(f"hostile: {sum(h['handled'] for h in hostile)}/{len(hostile)} handled; slowest {max(h['seconds'] for h in hostile):.2f} s")


if __name__ == "__main__":
    main()
