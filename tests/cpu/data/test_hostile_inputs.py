"""Hostile inputs: every bad image or record gets its reason code; nothing crashes, nothing is lost."""
import io
import os

import pytest
from PIL import Image

from engine.data.images import ImagePolicy, load_image, resolve_image_path
from engine.data.reasons import Reason, SampleError
from engine.data.sample import ImageRef, Message, Sample, validate_sample
from engine.data.shards import validate_all, write_quarantine


def png(size=(32, 32), color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def sample(images, text="<image>How many?", **kw) -> Sample:
    base = dict(id="s1", images=images, messages=[Message("user", text)], answer="3", task="counting", verifier="numeric")
    base.update(kw)
    return Sample(**base)


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    (d / "ok.png").write_bytes(png())
    return d


def reason_of(fn) -> Reason:
    with pytest.raises(SampleError) as info:
        fn()
    return info.value.reason


def test_valid_sample_with_bytes_and_path(root):
    policy = ImagePolicy(roots=(str(root),))
    s = sample([ImageRef(bytes=png())], text="<image><image>Compare.")
    s.images.append(ImageRef(path="ok.png"))
    assert validate_sample(s, policy) is s
    assert [im.size for im in s.load_images(policy)] == [(32, 32), (32, 32)]


def test_corrupt_image_bytes():
    assert reason_of(lambda: load_image(b"definitely not an image", None, ImagePolicy())) == Reason.IMAGE_CORRUPT


def test_truncated_png():
    big = io.BytesIO()
    Image.effect_noise((128, 128), 50).convert("RGB").save(big, format="PNG")
    data = big.getvalue()
    assert reason_of(lambda: load_image(data[: len(data) // 2], None, ImagePolicy())) == Reason.IMAGE_TRUNCATED


def test_truncated_jpeg():
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 50).convert("RGB").save(buf, format="JPEG")
    data = buf.getvalue()
    assert reason_of(lambda: load_image(data[: len(data) // 3], None, ImagePolicy())) in (Reason.IMAGE_TRUNCATED, Reason.IMAGE_CORRUPT)


def test_oversized_image_over_pixel_budget():
    buf = io.BytesIO()
    Image.effect_noise((300, 300), 80).convert("RGB").save(buf, format="PNG")  # noisy: not bomb-like
    assert reason_of(lambda: load_image(buf.getvalue(), None, ImagePolicy(max_pixels=200 * 200))) == Reason.IMAGE_TOO_LARGE


def test_decompression_bomb_rejected_before_decoding():
    # A solid 6000x6000 PNG is a few KB on disk: the classic bomb shape. Refused from the header.
    buf = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 200_000
    assert reason_of(lambda: load_image(buf.getvalue(), None, ImagePolicy(max_pixels=1024 * 1024))) == Reason.IMAGE_DECOMPRESSION_BOMB


def test_encoded_size_limit():
    assert reason_of(lambda: load_image(png(), None, ImagePolicy(max_bytes=10))) == Reason.IMAGE_TOO_LARGE


def test_missing_image_file(root):
    assert reason_of(lambda: load_image(None, "nope.png", ImagePolicy(roots=(str(root),)))) == Reason.IMAGE_MISSING


def test_image_without_source():
    assert reason_of(lambda: load_image(None, None, ImagePolicy())) == Reason.IMAGE_NO_SOURCE


@pytest.mark.parametrize("path", ["../secret.png", "sub/../../secret.png", "/etc/passwd"])
def test_path_escapes_are_refused(root, path):
    (root.parent / "secret.png").write_bytes(png())
    assert reason_of(lambda: resolve_image_path(path, [str(root)])) == Reason.IMAGE_PATH_ESCAPE


def test_symlink_out_of_root_is_refused(root):
    outside = root.parent / "outside.png"
    outside.write_bytes(png())
    os.symlink(outside, root / "link.png")
    assert reason_of(lambda: resolve_image_path("link.png", [str(root)])) == Reason.IMAGE_PATH_ESCAPE


def test_absolute_path_inside_root_is_allowed(root):
    assert resolve_image_path(str(root / "ok.png"), [str(root)]) == (root / "ok.png").resolve()


def test_paths_refused_without_roots():
    assert reason_of(lambda: resolve_image_path("ok.png", [])) == Reason.IMAGE_PATH_ESCAPE


def test_placeholder_image_count_mismatch():
    s = sample([ImageRef(bytes=png()), ImageRef(bytes=png())])
    assert reason_of(lambda: validate_sample(s)) == Reason.IMAGE_PLACEHOLDER_MISMATCH


def test_non_utf8_text_from_bytes_field():
    row = sample([ImageRef(bytes=png())]).to_row()
    row["answer"] = b"\xff\xfe3"
    assert reason_of(lambda: Sample.from_row(row)) == Reason.TEXT_NOT_UTF8


def test_non_utf8_text_surrogateescaped():
    text = b"<image>How many \xff?".decode("utf-8", errors="surrogateescape")
    assert reason_of(lambda: validate_sample(sample([ImageRef(bytes=png())], text=text), decode=False)) == Reason.TEXT_NOT_UTF8


def test_structural_reasons():
    img = [ImageRef(bytes=png())]
    assert reason_of(lambda: validate_sample(sample(img, answer=" "), decode=False)) == Reason.EMPTY_ANSWER
    assert reason_of(lambda: validate_sample(sample(img, split="dev"), decode=False)) == Reason.UNKNOWN_SPLIT
    assert reason_of(lambda: validate_sample(sample(img, messages=[]), decode=False)) == Reason.EMPTY_MESSAGES
    bad_role = sample(img, messages=[Message("robot", "<image>hi")])
    assert reason_of(lambda: validate_sample(bad_role, decode=False)) == Reason.BAD_ROLE
    row = sample(img).to_row()
    row["meta"] = "{not json"
    assert reason_of(lambda: Sample.from_row(row)) == Reason.BAD_JSON
    row = sample(img).to_row()
    del row["answer"]
    assert reason_of(lambda: Sample.from_row(row)) == Reason.MISSING_FIELD
    row = sample(img).to_row()
    row["messages"] = "not a list"
    assert reason_of(lambda: Sample.from_row(row)) == Reason.BAD_FIELD_TYPE


def test_validate_all_quarantines_bad_and_keeps_good(tmp_path, root):
    good = sample([ImageRef(bytes=png())])
    corrupt = sample([ImageRef(bytes=b"junk")], id="s2")
    dup = sample([ImageRef(bytes=png())])
    escaped = sample([ImageRef(path="../x.png")], id="s3")
    parse_err = SampleError(Reason.BAD_JSON, "line 7")
    items = [("f:1", good, None), ("f:2", corrupt, None), ("f:3", dup, None), ("f:4", escaped, None), ("f:7", parse_err, "{bad")]
    ok, bad = validate_all(items, ImagePolicy(roots=(str(root),)))
    assert [s.id for s in ok] == ["s1"]
    assert {(q.source, q.reason) for q in bad} == {
        ("f:2", "image_corrupt"),
        ("f:3", "duplicate_id"),
        ("f:4", "image_path_escape"),
        ("f:7", "bad_json"),
    }
    path = write_quarantine(bad, tmp_path)
    import pyarrow.parquet as pq

    assert pq.read_table(path).num_rows == 4  # nothing lost: every input is either good or quarantined
