"""Hostile records, per reader: each bad record is quarantined with its reason code and its
"file:line" / "file:row N" source, while the good records in the same file still load."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.formats import read_records
from engine.data.reasons import Reason
from engine.data.formats.verl import EXTRA_INFO_TYPE

from format_fixtures import VTRIUNE_SCHEMA, png, reasons_by_source, vtriune_math_row, write_jsonl, write_parquet


# ----- JSONL readers -----

def _ds(i, image="a.png", **over):
    rec = {"id": f"ok{i}", "ability": "counting", "prompt": "How many dots?", "ground_truth": "3", "image_paths": [image]}
    return {**rec, **over}


def _curr(i, image="a.png", **over):
    rec = {"id": f"ok{i}", "problem": "How many dots?", "solution": "<answer>3</answer>", "task": "math", "image": image}
    return {**rec, **over}


def _swift(i, image="a.png", **over):
    rec = {"id": f"ok{i}", "images": [image], "messages": [{"role": "user", "content": "<image>How many dots?"}], "solution": "3"}
    return {**rec, **over}


def _drop(rec, key):
    return {k: v for k, v in rec.items() if k != key}


# per format: record builder, (field to drop), (field, wrong-typed value), (field, value with 2 placeholders), (field, empty answer)
JSONL_FORMATS = {
    "difficulty_sampling": (_ds, "ground_truth", ("prompt", 42), ("prompt", "<image><image>Two?"), ("ground_truth", "<answer> </answer>")),
    "curr_reft": (_curr, "solution", ("problem", ["not", "text"]), ("problem", "<image><image>Two?"), ("solution", "<answer></answer>")),
    "swift": (_swift, "messages", ("messages", "hi"), ("messages", [{"role": "user", "content": "<image><image>Two?"}]), ("solution", "")),
}


def _jsonl_cases(fmt, tmp_path):
    make, missing, wrong, mismatch, empty = JSONL_FORMATS[fmt]
    return [
        (b'{"id": "cut", "prompt": ', Reason.BAD_JSON),
        (b'{"id": "\xff\xfe latin-1 bytes"}', Reason.TEXT_NOT_UTF8),
        (json.dumps(make(90, **{wrong[0]: "lone \ud800 surrogate"} if fmt != "swift" else {"solution": "\ud800"})).encode(), Reason.TEXT_NOT_UTF8),
        (b"[1, 2, 3]", Reason.BAD_FIELD_TYPE),
        (_drop(make(91), missing), Reason.MISSING_FIELD),
        (make(92, **{wrong[0]: wrong[1]}), Reason.BAD_FIELD_TYPE),
        (make(93, **{mismatch[0]: mismatch[1]}), Reason.IMAGE_PLACEHOLDER_MISMATCH),
        (make(94, image="../secret.png"), Reason.IMAGE_PATH_ESCAPE),
        (make(95, image=str(tmp_path / "secret.png")), Reason.IMAGE_PATH_ESCAPE),
        (make(96, image="http://example.com/a.png"), Reason.IMAGE_PATH_ESCAPE),
        (make(97, image="nope.png"), Reason.IMAGE_MISSING),
        (make(98, image="broken.png"), Reason.IMAGE_CORRUPT),
        (make(80, image="bad.tiff"), Reason.IMAGE_CORRUPT),  # PIL raises TypeError inside
        (make(81, image="loop.png"), Reason.IMAGE_MISSING),  # symlink loop
        (make(82, image="x" * 5000 + ".png"), Reason.IMAGE_MISSING),  # name too long for the OS
        (make(99, **{empty[0]: empty[1]}), Reason.EMPTY_ANSWER),
        (make(0), Reason.DUPLICATE_ID),
    ]


@pytest.mark.parametrize("fmt", sorted(JSONL_FORMATS))
def test_jsonl_reader_quarantines_each_bad_line(fmt, tmp_path, policy):
    make = JSONL_FORMATS[fmt][0]
    cases = _jsonl_cases(fmt, tmp_path)
    path = write_jsonl(tmp_path / "data.jsonl", [make(0)] + [rec for rec, _ in cases] + [b"   ", make(1)])
    samples, quarantine = read_records(fmt, path, policy)
    assert [s.id for s in samples] == ["ok0", "ok1"]
    expected = {f"{path}:{line}": reason.value for line, (_, reason) in enumerate(cases, start=2)}
    assert reasons_by_source(quarantine) == expected
    assert all(q.raw for q in quarantine)  # the offending record is kept for inspection


@pytest.mark.parametrize("fmt", sorted(JSONL_FORMATS))
def test_undecoded_reads_still_confine_paths(fmt, tmp_path, policy):
    make = JSONL_FORMATS[fmt][0]
    path = write_jsonl(tmp_path / "data.jsonl", [make(0), make(1, image="../secret.png"), make(2, image="broken.png")])
    samples, quarantine = read_records(fmt, path, policy, decode=False, embed_images=False)
    assert [(s.id, s.images[0].bytes, s.images[0].path) for s in samples] == [("ok0", None, "a.png"), ("ok2", None, "broken.png")]
    assert [q.reason for q in quarantine] == [Reason.IMAGE_PATH_ESCAPE.value]


# ----- Parquet readers -----

VTRIUNE_LOOSE = VTRIUNE_SCHEMA.set(  # verifier_parm as a JSON string column, as V-Triune allows
    VTRIUNE_SCHEMA.get_field_index("reward_model"),
    pa.field("reward_model", pa.struct([f if f.name != "verifier_parm" else pa.field("verifier_parm", pa.string())
                                        for f in VTRIUNE_SCHEMA.field("reward_model").type])),
)
VERL_FOREIGN = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", EXTRA_INFO_TYPE),
])


def _vt(i, **over):
    row = vtriune_math_row(extra_info={"id": f"ok{i}", "image_path": None})
    row["reward_model"] = dict(row["reward_model"], verifier_parm="{}")
    row.update(over)
    return row


def _verl(i, **over):
    row = {"data_source": "geo3k", "prompt": [{"role": "user", "content": "<image>Find x."}], "images": [{"bytes": png(), "path": None}],
           "ability": "math", "reward_model": {"style": "rule", "ground_truth": "3"},
           "extra_info": {"index": i, "id": f"ok{i}", "verifier_params": "{}"}}
    row.update(over)
    return row


def _with(row, key, **fields):
    return {**row, key: {**row[key], **fields}}


PARQUET_FORMATS = {
    "vtriune": (_vt, VTRIUNE_LOOSE, ("reward_model", "verifier_parm")),
    "verl": (_verl, VERL_FOREIGN, ("extra_info", "verifier_params")),
}


def _parquet_cases(fmt, tmp_path):
    make, _, (json_struct, json_field) = PARQUET_FORMATS[fmt]
    path_image = lambda p: [{"bytes": None, "path": p}]  # noqa: E731
    return [
        (make(90, prompt=None), Reason.MISSING_FIELD),
        (make(91, reward_model=None), Reason.MISSING_FIELD),
        (make(92, prompt=[{"role": "user", "content": None}]), Reason.MISSING_FIELD),
        (make(93, prompt=[{"role": "robot", "content": "<image>hi"}]), Reason.BAD_ROLE),
        (make(94, prompt=[{"role": "user", "content": "<image><image>Two?"}]), Reason.IMAGE_PLACEHOLDER_MISMATCH),
        (make(95, images=path_image("../secret.png")), Reason.IMAGE_PATH_ESCAPE),
        (make(96, images=path_image(str(tmp_path / "secret.png"))), Reason.IMAGE_PATH_ESCAPE),
        (make(97, images=path_image("nope.png")), Reason.IMAGE_MISSING),
        (make(98, images=[{"bytes": b"\x89PNG junk", "path": None}]), Reason.IMAGE_CORRUPT),
        (make(99, images=[{"bytes": None, "path": None}]), Reason.IMAGE_NO_SOURCE),
        (_with(make(100), json_struct, **{json_field: "{oops"}), Reason.BAD_JSON),
        (make(101, data_source="NOT-UTF8"), Reason.TEXT_NOT_UTF8),  # bytes swapped in below
        (make(0), Reason.DUPLICATE_ID),
    ]


def _with_invalid_utf8(table: pa.Table, marker: str) -> pa.Table:
    """Arrow lets a writer put non-UTF-8 bytes in a string column; foreign files can have them."""
    raw = [b"\xff\xfe" if v == marker else (v.encode() if v is not None else None) for v in table.column("data_source").to_pylist()]
    column = pa.array(raw, pa.binary()).view(pa.string())
    return table.set_column(table.schema.get_field_index("data_source"), "data_source", column)


@pytest.mark.parametrize("fmt", sorted(PARQUET_FORMATS))
def test_parquet_reader_quarantines_each_bad_row(fmt, tmp_path, policy):
    make, schema, _ = PARQUET_FORMATS[fmt]
    cases = _parquet_cases(fmt, tmp_path)
    rows = [make(0)] + [row for row, _ in cases] + [make(1)]
    path = tmp_path / "data.parquet"
    pq.write_table(_with_invalid_utf8(pa.Table.from_pylist(rows, schema=schema), "NOT-UTF8"), path)
    samples, quarantine = read_records(fmt, path, policy)
    assert [s.id for s in samples] == ["ok0", "ok1"]
    expected = {f"{path}:row {row}": reason.value for row, (_, reason) in enumerate(cases, start=1)}
    assert reasons_by_source(quarantine) == expected


@pytest.mark.parametrize("fmt", sorted(PARQUET_FORMATS))
def test_wrong_column_types_are_quarantined_per_row(fmt, tmp_path, policy):
    make = PARQUET_FORMATS[fmt][0]
    rows = [dict(make(i), prompt=f"<image>prompt as a plain string {i}") for i in range(2)]
    path = write_parquet(tmp_path / "flat.parquet", rows)
    samples, quarantine = read_records(fmt, path, policy)
    assert samples == []
    assert [q.reason for q in quarantine] == [Reason.BAD_FIELD_TYPE.value] * 2


@pytest.mark.parametrize("fmt", sorted(PARQUET_FORMATS))
def test_an_unreadable_shard_does_not_stop_the_directory(fmt, tmp_path, policy):
    make, schema, _ = PARQUET_FORMATS[fmt]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a-broken.parquet").write_bytes(b"PAR1 not really parquet")
    write_parquet(tmp_path / "d" / "b-good.parquet", [make(0)], schema)
    samples, quarantine = read_records(fmt, tmp_path / "d", policy)
    assert [s.id for s in samples] == ["ok0"]
    assert [(q.source, q.reason) for q in quarantine] == [(str(tmp_path / "d" / "a-broken.parquet"), Reason.BAD_FIELD_TYPE.value)]


@pytest.mark.parametrize("embed_images", [True, False])
def test_unreadable_image_file_is_quarantined(embed_images, tmp_path, policy, monkeypatch):
    """Permission denied cannot be staged as root: make reading that one file fail instead."""
    from pathlib import Path

    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "b.png":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    path = write_jsonl(tmp_path / "d.jsonl", [_ds(0), _ds(1, image="sub/b.png")])
    samples, quarantine = read_records("difficulty_sampling", path, policy, embed_images=embed_images)
    assert [s.id for s in samples] == ["ok0"]
    assert [q.reason for q in quarantine] == [Reason.IMAGE_MISSING.value]
