"""kartdata.shard.images: each way a frame becomes its stored JPEG, on real
recordings in PNG and JPEG, checked against the plain decode-resize-encode."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kartdata import synth
from kartdata.errors import SourceError
from kartdata.manifest import Encoding, Manifest
from kartdata.schema import Pad, SessionMeta, decode_example, frame_filename
from kartdata.shard import ShardConfig, shard
from kartdata.shard.images import store_frame
from kartdata.sources import open_source
from kartdata.sources.native import SessionWriter
from kartdata.tfrecord import read_records

BOX = Encoding()  # 320x240, q90


def _jpeg_session(path: Path, n: int, width: int, height: int) -> Path:
    meta = SessionMeta(
        game="synthetic", track="t", player="p", width=width, height=height, fps=15.0,
        created="2020-01-01T00:00:00", image_format="jpg",
    )  # fmt: skip
    with SessionWriter(path, meta) as w:
        for i in range(n):
            w.write(synth.render(0.3 * np.sin(i), i, width, height), Pad(x=0.1), t_ns=i * 10**8)
    return path


def _plain(pixels: np.ndarray) -> bytes:
    """What the sharder stored before issue 15: decode, resize, back to numpy, JPEG."""
    im = Image.fromarray(pixels).resize((320, 240), Image.Resampling.BILINEAR, reducing_gap=1.0)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(im)).save(buf, format="JPEG", quality=90, optimize=True)
    return buf.getvalue()


def _decode(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_png_frames_store_the_same_bytes_as_the_plain_path(tmp_path: Path) -> None:
    s = open_source(synth.make_tensorkart(tmp_path / "tk", 4, seed=3))
    for f in s.frames():
        stored = store_frame(f, BOX)
        assert stored.jpeg == _plain(f.image())
        assert (stored.width, stored.height, stored.source_size) == (320, 240, (640, 480))


@pytest.mark.parametrize("opencv", [True, False], ids=["opencv", "pillow"])
@pytest.mark.parametrize("shape", [(480, 640), (300, 400), (481, 640)])
def test_either_reduce_stores_pillows_bytes(
    monkeypatch: pytest.MonkeyPatch, opencv: bool, shape: tuple[int, int]
) -> None:
    """OpenCV's halving (the fast extra) and Pillow's box reduce give the same
    stored bytes, on noise (no smooth area to hide a rounding difference);
    an odd size is not a halving and goes through Pillow either way."""
    from kartdata.shard import images

    if opencv:
        pytest.importorskip("cv2")
    else:
        monkeypatch.setattr(images, "opencv", lambda: None)
    pixels = np.random.default_rng(7).integers(0, 256, (*shape, 3), dtype=np.uint8)
    box = Encoding(max_width=shape[1] // 2, max_height=shape[0] // 2)
    h, w = box.stored_size(shape[1], shape[0])[::-1]
    im = Image.fromarray(pixels).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=1.0)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90, optimize=True)
    stored = images.store_pixels(pixels, box)
    assert (stored.height, stored.width) == (h, w)
    assert stored.jpeg == buf.getvalue()


def test_a_jpeg_within_the_box_is_stored_as_recorded(tmp_path: Path) -> None:
    rec = _jpeg_session(tmp_path / "small", 3, 320, 240)
    for f in open_source(rec).frames():
        stored = store_frame(f, BOX)
        assert stored.jpeg == Path(f.where).read_bytes()
        assert (stored.width, stored.height, stored.source_size) == (320, 240, (320, 240))


def test_a_larger_jpeg_is_decoded_scaled_down(tmp_path: Path) -> None:
    rec = _jpeg_session(tmp_path / "large", 3, 640, 480)
    for f in open_source(rec).frames():
        stored = store_frame(f, BOX)
        assert (stored.width, stored.height, stored.source_size) == (320, 240, (640, 480))
        # libjpeg's half-scale decode against a full decode box-reduced: the
        # same picture, within JPEG's own error
        diff = np.abs(_decode(stored.jpeg) - _decode(_plain(f.image())))
        assert diff.mean() < 2.0 and np.percentile(diff, 99) < 16, (diff.mean(), diff.max())


def test_grey_and_truncated_jpegs(tmp_path: Path) -> None:
    rec = _jpeg_session(tmp_path / "s", 3, 320, 240)
    grey, cut = rec / frame_filename(0, "jpg"), rec / frame_filename(1, "jpg")
    Image.fromarray(synth.render(0.0, 0, 320, 240)).convert("L").save(grey, quality=90)
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    frames = list(open_source(rec).frames())
    stored = store_frame(frames[0], BOX)  # not kept: the dataset stores colour
    assert stored.jpeg != grey.read_bytes() and _decode(stored.jpeg).shape == (240, 320, 3)
    with pytest.raises(SourceError, match=rf"{cut}: frame 1: corrupt or truncated image"):
        store_frame(frames[1], BOX)


def test_sharded_jpeg_sessions_read_back(tmp_path: Path) -> None:
    small = _jpeg_session(tmp_path / "rec" / "small", 4, 320, 240)
    large = _jpeg_session(tmp_path / "rec" / "large", 4, 640, 480)
    ds = tmp_path / "ds"
    shard([tmp_path / "rec"], ds, ShardConfig(workers=0, validate=False))
    m = Manifest.load(str(ds))
    stored = {
        (r.session, r.frame): r
        for s in m.shards
        for r in map(decode_example, read_records(str(ds / s.path), m.encoding.compression))
    }
    for rec in (small, large):
        src = open_source(rec)
        for f in src.frames():
            r = stored.pop((src.key, f.index))
            assert r.image == store_frame(f, BOX).jpeg and (r.width, r.height) == (320, 240)
            if rec == small:
                assert r.image == Path(f.where).read_bytes()  # as recorded
    assert stored == {}


def _records(ds: Path) -> dict[tuple[str, int], bytes]:
    m = Manifest.load(str(ds))
    return {
        (r.session, r.frame): r.image
        for s in m.shards
        for r in map(decode_example, read_records(str(ds / s.path), m.encoding.compression))
    }


def test_validating_while_sharding_decodes_each_frame_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kartdata.sources import base
    from kartdata.validate.verdicts import frame_verdicts

    rec = synth.make_tensorkart(tmp_path / "rec" / "tk", 40, width=320, height=240, seed=2)
    synth.make_native(tmp_path / "rec" / "n", 30, width=320, height=240, seed=3)
    # a black frame, so that validation excludes something
    Image.new("RGB", (320, 240)).save(rec / "img_7.png")
    decode = base.decode_image
    decoded: list[str] = []

    def counting(data: bytes, where: str, frame: int) -> np.ndarray:
        decoded.append(where)
        return decode(data, where, frame)

    monkeypatch.setattr(base, "decode_image", counting)
    # validating as it goes (no verdicts stored): one decode a frame, for both
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "fresh"))
    shard([tmp_path / "rec"], tmp_path / "inline", ShardConfig(workers=0))
    assert len(decoded) == len(set(decoded)) == 70
    # verdicts stored first (kartdata validate), then sharded: the same dataset
    monkeypatch.setenv("KARTKIT_CACHE", str(tmp_path / "stored"))
    for s in (rec, tmp_path / "rec" / "n"):
        frame_verdicts(open_source(s))
    decoded.clear()
    shard([tmp_path / "rec"], tmp_path / "after", ShardConfig(workers=0))
    assert len(decoded) == 69  # the sharder decodes every frame it keeps
    inline, after = _records(tmp_path / "inline"), _records(tmp_path / "after")
    assert inline == after and len(inline) == 69
    assert (open_source(rec).key, 7) not in inline
