"""The streaming ``tf.data`` loader: a dataset (manifest + shards) → batches of
``(images, targets)``.

::

    per stratum: shard files (shuffled; repeated when balancing) ─► interleave
                 ─► per shard, batches of records: parse, keep the split's sessions
                 ─► unbatch
    sample_from_datasets(strata, balance weights) ─► take(epoch)
    ─► shuffle (bounded) ─► decode ─► batch ─► preprocess ─► augment ─► targets ─► prefetch

With ``device_stage=True`` the loader stops at uint8 and the mirror is drawn
before the unbatch (pads mirrored there; each record carries the draw):
decode ─► batch ─► targets ─► prefetch, yielding ``({"image", "mirror"}, targets)``,
and :func:`device_stage` (preprocess ─► mirror ─► contrast, brightness, shift)
runs in the train step, on the accelerator when there is one.

The split filter runs on parsed records before any image is decoded; class
balance picks strata, it never reads a frame to throw it away. Memory is flat:
shuffle buffers and the number of open shards are bounded, nothing is cached.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from kartdata import fs, schema
from kartdata import preprocess as _preprocess
from kartdata.augment import (
    AugmentConfig,
    augment_batch,
    flip_images,
    flip_pads,
    mirror_draw,
    photometric_batch,
    turn_draw,
    turn_images,
    turn_pads,
)
from kartdata.balance import Balance, BalancePlan, plan
from kartdata.errors import DatasetError
from kartdata.index import session_counts
from kartdata.manifest import Manifest, ShardInfo
from kartdata.preprocess import PILOTNET_INPUT, InputSpec
from kartdata.split import SplitConfig, normalize_split, recording_aliases, sessions_in
from kartdata.targets import TENSORKART, TargetConfig, as_target_config, make_targets

OnError = Literal["raise", "skip"]

#: Marks errors raised inside the graph so :func:`dataset_errors` can turn them
#: back into one-line DatasetErrors.
_MARK = "kartkit-dataset-error: "


_PARSE_BATCH = 64
_META = (schema.FEATURE_SESSION, schema.FEATURE_FRAME, schema.FEATURE_STRATUM)
#: In device mode, whether a record's pads were mirrored: its image must be too.
FEATURE_MIRROR = "mirror"
#: In device mode with a turn, the record's slide (:func:`kartdata.augment.turn_draw`):
#: its pads were steered back, its image must slide.
FEATURE_TURN = "turn"


class ShardWarning(UserWarning):
    """A damaged shard skipped (or cut short) because ``on_error="skip"``."""


@dataclass(frozen=True)
class LoadConfig:
    """Everything :func:`load` takes; any field can also be passed to it by name."""

    split: str = "train"
    batch_size: int = 64
    input: InputSpec = PILOTNET_INPUT
    #: ``"tensorkart"``, ``"class3"``, a tuple of pad fields, or a TargetConfig.
    targets: str | tuple[str, ...] | TargetConfig = TENSORKART
    balance: Balance = None
    recovery_weight: float = 1.0
    #: Samples per epoch; default: the split's frame count.
    epoch_samples: int | None = None
    #: ``None``: on for ``train`` (default AugmentConfig), off otherwise.
    #: ``False`` turns it off. Never applied outside ``train``.
    augment: AugmentConfig | bool | None = None
    splits: SplitConfig = field(default_factory=SplitConfig)
    #: ``None``: shuffle ``train`` only.
    shuffle: bool | None = None
    shuffle_buffer: int = 2048
    #: Shard files read at once per stream (per stratum when balancing).
    cycle_length: int = 4
    deterministic: bool = False
    seed: int | None = None
    on_error: OnError = "raise"
    drop_remainder: bool = False
    #: Also yield a third element per batch: a dict of ``session``, ``frame``
    #: and ``stratum`` (for checks and debugging).
    with_meta: bool = False
    #: Yield ``({"image": uint8 [N, H, W, 3], "mirror": bool [N]}, targets)``:
    #: images at their stored size, untouched; labels already mirrored where
    #: ``mirror`` says; and leave the per-pixel float work (preprocess, the
    #: image's mirror, contrast/brightness/shift) to :func:`device_stage` in the
    #: train step. On a CPU that work costs more per frame than reading and
    #: decoding it (docs/benchmarks.md); on an accelerator it is nearly free,
    #: and the CPU is left to read and decode.
    device_stage: bool = False

    @property
    def target_config(self) -> TargetConfig:
        return as_target_config(self.targets)


@dataclass(frozen=True)
class Prepared:
    """What a load resolves to before any record is read."""

    root: str
    manifest: Manifest
    config: LoadConfig
    split: str
    sessions: frozenset[str]
    #: Readable shards with at least one frame of the split, and that count.
    shards: tuple[tuple[ShardInfo, int], ...]
    plan: BalancePlan

    @property
    def frames(self) -> int:
        return sum(n for _, n in self.shards)

    @property
    def balanced(self) -> bool:
        return self.config.balance is not None or self.config.recovery_weight != 1.0


def make_config(config: LoadConfig | None = None, **options: Any) -> LoadConfig:
    base = config or LoadConfig()
    names = {f.name for f in dataclasses.fields(LoadConfig)}
    unknown = set(options) - names
    if unknown:
        raise TypeError(f"unknown load option(s) {sorted(unknown)}; options are {sorted(names)}")
    return dataclasses.replace(base, **options)


def prepare(dataset: str, config: LoadConfig | None = None, **options: Any) -> Prepared:
    """Resolve the split, check the shards and compute the balance plan,
    reading only the manifest and the index sidecars."""
    cfg = make_config(config, **options)
    root = str(dataset)
    manifest = Manifest.load(root)
    split = normalize_split(cfg.split)
    cfg.target_config.check(manifest.context_radius)
    if cfg.batch_size <= 0:
        raise DatasetError(f"batch_size {cfg.batch_size} must be positive")
    if cfg.on_error not in ("raise", "skip"):
        raise DatasetError(f"on_error {cfg.on_error!r} is not 'raise' or 'skip'")
    selected = [s for s in manifest.sessions if cfg.splits.selects(s.tags)]
    if not selected and manifest.sessions:
        raise DatasetError(
            f"{root}: no session carries the tags {', '.join(cfg.splits.session_tags)} "
            f"(of {len(manifest.sessions)} sessions)"
        )
    keys = frozenset(
        sessions_in(
            {s.key for s in selected}, split, cfg.splits, recording_aliases(tuple(selected))
        )
    )

    shards: list[tuple[ShardInfo, int]] = []
    for shard in manifest.shards:
        problem = _shard_problem(root, shard)
        per_session: dict[str, int] = {}
        if problem is None:
            try:
                per_session = _session_counts(root, shard)
            except DatasetError as e:
                problem = str(e)
        if problem is not None:
            if cfg.on_error == "raise":
                raise DatasetError(problem)
            warnings.warn(f"skipping shard: {problem}", ShardWarning, stacklevel=2)
            continue
        n = sum(c for k, c in per_session.items() if k in keys)
        if n:
            shards.append((shard, n))

    counts = dict.fromkeys(schema.STRATA, 0)
    for shard, n in shards:
        counts[shard.stratum] += n
    if not shards:
        raise DatasetError(
            f"{root}: split {split!r} has no frames ({len(keys)} of "
            f"{len(manifest.sessions)} sessions; change the split's val_fraction or lists)"
        )
    balance_plan = plan(counts, cfg.balance, cfg.recovery_weight, cfg.epoch_samples)
    return Prepared(root, manifest, cfg, split, keys, tuple(shards), balance_plan)


def balance_report(dataset: str, config: LoadConfig | None = None, **options: Any) -> BalancePlan:
    """Effective per-stratum weights and repeats per epoch of a load."""
    return prepare(dataset, config, **options).plan


def load(dataset: str, config: LoadConfig | None = None, **options: Any) -> Any:
    """A ``tf.data.Dataset`` of ``(images, targets)`` batches (see :class:`LoadConfig`).

    ``kartdata.load(path, split="train", batch_size=64, balance="uniform",
    recovery_weight=2.0)``; or ``kartdata.load(path, LoadConfig(...))``.
    """
    return build(prepare(dataset, config, **options))


def build(prep: Prepared) -> Any:
    import tensorflow as tf

    cfg = prep.config
    train = prep.split == "train"
    seed = (cfg.seed if cfg.seed is not None else 0) if cfg.deterministic else cfg.seed
    shuffle = train if cfg.shuffle is None else cfg.shuffle
    augment = _augment_config(cfg) if train else None
    radius = prep.manifest.context_radius
    compression = prep.manifest.encoding.compression
    session_filter = _session_filter(prep)
    parse = _parser(radius)
    # Every field carried past the unbatch costs per record, so only what the
    # batches need goes on.
    fields = (schema.FEATURE_IMAGE, schema.FEATURE_CONTEXT, *(_META if cfg.with_meta else ()))
    # In device mode the mirror and the turn are drawn and the pads changed per
    # parsed batch (vectorised, on the interleave's threads); the images are
    # flipped and slid by the train step, after preprocessing, where they are
    # small (see device_stage).
    labels = (
        augment
        if cfg.device_stage and augment is not None and (augment.mirror > 0 or augment.turns)
        else None
    )

    def per_batch(records: Any) -> Any:
        rec = parse(records)
        if session_filter is not None:
            rec = session_filter(rec)
        return {k: rec[k] for k in fields}

    def stream(items: Sequence[tuple[ShardInfo, int]], repeat: bool, salt: int) -> Any:
        paths = [fs.join(prep.root, s.path) for s, _ in items]
        expected = [s.frames for s, _ in items]
        files = tf.data.Dataset.from_tensor_slices((paths, tf.constant(expected, tf.int64)))
        if shuffle:
            files = files.shuffle(len(paths), seed=_sub(seed, salt), reshuffle_each_iteration=True)
        if repeat:
            files = files.repeat()
        # Each shard yields parsed batches of up to _PARSE_BATCH consecutive
        # records: parsing, the damage check and the split filter then cost a
        # fraction per record of what they cost one record at a time, and run
        # on the interleave's parallel threads.
        batches = files.interleave(
            _plain(lambda p, n: _read_shard(p, n, compression, cfg.on_error).map(per_batch)),
            cycle_length=max(1, min(cfg.cycle_length, len(paths))),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=cfg.deterministic,
        )
        if labels is not None:
            batches = tf.data.Dataset.zip(
                (batches, tf.data.Dataset.random(seed=_sub(seed, 400 + salt)))
            ).map(_label_chooser(labels))
        return batches.unbatch()

    if prep.balanced:
        weights = prep.plan.weights
        strata = [s for s in schema.STRATA if weights[s] > 0]
        streams = [
            stream([it for it in prep.shards if it[0].stratum == s], True, i)
            for i, s in enumerate(strata)
        ]
        ds = tf.data.Dataset.sample_from_datasets(
            streams, [weights[s] for s in strata], seed=_sub(seed, 100), stop_on_empty_dataset=False
        ).take(prep.plan.epoch_samples)
    else:
        ds = _recorded_mix(prep, stream, shuffle, seed)
        if cfg.epoch_samples is not None:
            ds = ds.repeat().take(cfg.epoch_samples)

    if shuffle and cfg.shuffle_buffer > 1:
        ds = ds.shuffle(cfg.shuffle_buffer, seed=_sub(seed, 200), reshuffle_each_iteration=True)
    # With one stored image size (the usual case: one game, one capture size)
    # images are batched as decoded and preprocessed a batch at a time, which
    # costs about a third less per image than one at a time.
    size = stored_size(prep)
    if cfg.device_stage and size is None:
        size = common_size(prep)
    ds = ds.map(
        _decoder(prep.manifest.encoding.image, None if size else cfg.input, size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=cfg.deterministic,
    )
    ds = ds.batch(cfg.batch_size, drop_remainder=cfg.drop_remainder)
    if size is not None and not cfg.device_stage:
        ds = ds.map(
            _batch_preprocessor(cfg.input),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=cfg.deterministic,
        )
    if cfg.device_stage:
        augment = None
    if augment is not None:
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=_sub(seed, 300)).batch(2)))
    ds = ds.map(
        _finisher(cfg, augment, radius, prep.manifest.classes),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=cfg.deterministic,
    )
    options = tf.data.Options()
    options.deterministic = cfg.deterministic
    ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE)


@contextmanager
def dataset_errors() -> Iterator[None]:
    """Turn a damaged-shard error raised while iterating a loader (e.g. inside
    ``model.fit``) into a one-line :class:`DatasetError` naming the shard."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as e:
        message = shard_error_message(str(e))
        if message is None:
            raise
        raise DatasetError(message) from None


def shard_error_message(text: str) -> str | None:
    """The loader's own message inside a TensorFlow error's text, if any."""
    m = re.search(re.escape(_MARK) + r"([^\]\n]*)", text)
    return m.group(1).strip() if m else None


# -- pieces of the graph ----------------------------------------------------


def _plain(fn: Any) -> Any:
    """Mark a graph function as needing no AutoGraph conversion: none has
    Python control flow on tensors, and converting them all makes building a
    loader take seconds."""
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def _sub(seed: int | None, salt: int) -> int | None:
    return None if seed is None else seed * 1_000_003 + salt


def _augment_config(cfg: LoadConfig) -> AugmentConfig | None:
    if cfg.augment is None or cfg.augment is True:
        return AugmentConfig()
    if cfg.augment is False:
        return None
    return cfg.augment


@functools.lru_cache(maxsize=1 << 16)
def _session_counts(root: str, shard: ShardInfo) -> dict[str, int]:
    """Records per session in a shard, from its index. Cached: shards never
    change under a name (a manifest names each shard with its checksum), and a
    training run prepares a load every epoch."""
    counts = session_counts(fs.join(root, shard.index))
    rows = sum(counts.values())
    if rows != shard.frames:
        raise DatasetError(
            f"{fs.join(root, shard.index)}: index has {rows} rows, "
            f"manifest says {shard.frames} records"
        )
    return counts


def _shard_problem(root: str, shard: ShardInfo) -> str | None:
    """Cheap checks before reading: the shard is there and has its recorded size."""
    path = fs.join(root, shard.path)
    if not fs.exists(path):
        return f"{path}: shard is missing"
    actual = fs.size(path)
    if actual != shard.bytes:
        return (
            f"{path}: shard is {actual} bytes, manifest says {shard.bytes} (truncated or replaced)"
        )
    return None


def _read_shard(path: Any, expected: Any, compression: str, on_error: OnError) -> Any:
    """A shard's records in batches of up to ``_PARSE_BATCH``; a record that
    cannot be read ends the shard, and the count of what was read is checked
    against the manifest when it ends, so that a damaged shard is reported by
    name (TensorFlow's own error does not name it). Counting whole batches
    keeps the check's cost per record small."""
    import tensorflow as tf

    batches = (
        tf.data.TFRecordDataset(path, compression_type=compression)
        .ignore_errors()
        .batch(_PARSE_BATCH)
    )
    marked = batches.map(_plain(lambda r: (r, False))).concatenate(
        tf.data.Dataset.from_tensors((tf.zeros([0], tf.string), True))
    )

    def step(count: Any, item: Any) -> Any:
        records, end = item
        ok = tf.logical_or(tf.logical_not(end), tf.equal(count, expected))

        def report() -> Any:
            message = tf.strings.join(
                [
                    path,
                    ": shard is damaged: ",
                    tf.strings.as_string(count),
                    " of ",
                    tf.strings.as_string(expected),
                    " records readable",
                ]
            )
            if on_error == "raise":
                tf.debugging.Assert(False, [tf.strings.join([_MARK, message])])
            else:
                tf.py_function(_warn_damaged, [message], [])
            return tf.constant(0, tf.int64)

        with tf.control_dependencies([tf.cond(ok, lambda: tf.constant(0, tf.int64), report)]):
            count = tf.identity(count) + tf.size(records, out_type=tf.int64)
        return count, (records, end)

    return (
        marked.scan(tf.constant(0, tf.int64), _plain(step))
        .filter(_plain(lambda records, end: tf.logical_not(end)))
        .map(_plain(lambda records, end: records))
    )


def _warn_damaged(message: Any) -> None:
    warnings.warn(f"skipping the rest of a shard: {message.numpy().decode()}", ShardWarning, 2)


def _session_filter(prep: Prepared) -> Any:
    """A map over parsed batches keeping the records of the split's sessions;
    ``None`` when every session of the dataset is in the split."""
    import tensorflow as tf

    if prep.sessions >= prep.manifest.session_keys():
        return None
    keys = sorted(prep.sessions)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys or [""], tf.string), tf.constant([1] * len(keys) or [0], tf.int32)
        ),
        default_value=0,
    )

    def keep(rec: Any) -> Any:
        wanted = table.lookup(rec[schema.FEATURE_SESSION]) > 0
        return {k: tf.boolean_mask(v, wanted) for k, v in rec.items()}

    return _plain(keep)


def _recorded_mix(prep: Prepared, stream: Any, shuffle: bool, seed: int | None) -> Any:
    """Every record once, in the recorded mix of strata at every point of the
    pass, not only over the whole of it. A shard holds one stratum, so reading
    a few shuffled shards at a time fed training one class for a shard's length
    (thousands of frames: a model that saw only lefts, then only rights,
    learned to steer straight); so when shuffling, each stratum is its own
    stream and records are drawn from them at their shares."""
    import tensorflow as tf

    counts: dict[str, int] = {}
    for shard, n in prep.shards:
        counts[shard.stratum] = counts.get(shard.stratum, 0) + n
    strata = [s for s in schema.STRATA if counts.get(s, 0) > 0]
    if not shuffle or len(strata) < 2:
        return stream(prep.shards, False, 0)
    streams = [
        stream([it for it in prep.shards if it[0].stratum == s], False, i)
        for i, s in enumerate(strata)
    ]
    return tf.data.Dataset.sample_from_datasets(
        streams, [counts[s] / prep.frames for s in strata], seed=_sub(seed, 100),
        stop_on_empty_dataset=False,
    )  # fmt: skip


def _parser(radius: int) -> Any:
    import tensorflow as tf

    full = schema.feature_spec()
    wanted = (
        schema.FEATURE_IMAGE,
        schema.FEATURE_SESSION,
        schema.FEATURE_FRAME,
        schema.FEATURE_STRATUM,
        schema.FEATURE_CONTEXT,
    )
    spec = {k: full[k] for k in wanted}
    if (2 * radius + 1) * schema.PAD_SIZE != spec[schema.FEATURE_CONTEXT].shape[0]:
        spec[schema.FEATURE_CONTEXT] = tf.io.FixedLenFeature(
            [(2 * radius + 1) * schema.PAD_SIZE], tf.float32
        )

    def parse(records: Any) -> Any:
        rec = tf.io.parse_example(records, spec)
        rec[schema.FEATURE_CONTEXT] = tf.reshape(
            rec[schema.FEATURE_CONTEXT], [-1, 2 * radius + 1, schema.PAD_SIZE]
        )
        return rec

    return _plain(parse)


def device_stage(config: LoadConfig) -> Any:
    """The train-step half of a ``device_stage=True`` load of ``config``: a
    function ``(inputs, seed) -> images`` taking the loader's ``{"image": uint8
    [N, H, W, 3], "mirror": bool [N]}`` to the model input — THE
    :func:`kartdata.preprocess.preprocess`, then the horizontal flip of the
    images whose labels the loader mirrored and the slide of those it turned
    (``"turn"``: float [N], present only with a turn), then, for the ``train`` split with
    augmentation on, contrast, brightness and shift
    (:func:`kartdata.augment.photometric_batch`). ``seed`` is a stateless
    ``[2]`` int tensor (unused without augmentation). Traceable inside a
    ``tf.function`` and under a distribution strategy. Flipping after
    preprocessing gives the same pixels as before it (crops are vertical and
    area resizing is symmetric) and touches a fraction of the data."""

    spec = config.input
    train = normalize_split(config.split) == "train"
    augment = _augment_config(config) if train else None

    def run(inputs: Any, seed: Any = None) -> Any:
        # Looked up on the module when traced: THE function play uses.
        x = _preprocess.preprocess(inputs[schema.FEATURE_IMAGE], spec)
        x = flip_images(x, inputs[FEATURE_MIRROR])
        if FEATURE_TURN in inputs:
            if augment is None:
                raise ValueError("turned labels reached a device stage without augmentation")
            x = turn_images(x, inputs[FEATURE_TURN], augment)
        if augment is not None:
            if seed is None:
                raise ValueError("the device stage of an augmented load needs a seed")
            x = photometric_batch(x, seed, augment)
        return x

    return run


def stored_size(prep: Prepared) -> tuple[int, int] | None:
    """(height, width) of every stored image of the split, if they share one."""
    sizes = _stored_sizes(prep)
    if len(sizes) != 1:
        return None
    (w, h) = sizes.pop()
    return h, w


def common_size(prep: Prepared) -> tuple[int, int]:
    """(height, width) a ``device_stage`` load batches images at when sessions
    of the split were stored at different sizes: the largest stored size, so no
    session loses pixels before preprocessing; other frames are fitted to it
    (antialiased resize, as for an odd-sized frame). Without any recorded size,
    the encoding's box, which every stored image fits in."""
    sizes = _stored_sizes(prep)
    if not sizes:
        enc = prep.manifest.encoding
        return enc.max_height, enc.max_width
    w, h = max(sizes, key=lambda wh: (wh[0] * wh[1], wh))
    return h, w


def _stored_sizes(prep: Prepared) -> set[tuple[int, int]]:
    """(width, height) of the stored images of the split's sessions that record a size."""
    enc = prep.manifest.encoding
    return {
        enc.stored_size(s.width, s.height)
        for s in prep.manifest.sessions
        if s.key in prep.sessions and s.width > 0 and s.height > 0
    }


def _label_chooser(config: AugmentConfig) -> Any:
    """A map over (parsed batch, random int64): draw which records to mirror
    and how far to turn each, change their pads now and mark them
    (``FEATURE_MIRROR``, ``FEATURE_TURN``) for the train step."""
    import tensorflow as tf

    def choose(rec: Any, draw: Any) -> Any:
        context = rec[schema.FEATURE_CONTEXT]
        n, seed = tf.shape(context)[0], tf.stack([draw, 0])
        flip = mirror_draw(n, seed, config) if config.mirror > 0 else tf.zeros([n], tf.bool)
        context = flip_pads(context, flip)
        rec[FEATURE_MIRROR] = flip
        if config.turns:
            amount = turn_draw(n, seed, config)
            context = turn_pads(context, amount, config)
            rec[FEATURE_TURN] = amount
        rec[schema.FEATURE_CONTEXT] = context
        return rec

    return _plain(choose)


def _decoder(image_format: str, spec: InputSpec | None, size: tuple[int, int] | None) -> Any:
    """Decode each record's image; preprocess it too when ``spec`` is given
    (otherwise bring it to ``size`` for batching)."""
    import tensorflow as tf

    def decode(rec: Any) -> Any:
        data = rec.pop(schema.FEATURE_IMAGE)
        if image_format == "jpeg":
            image = tf.io.decode_jpeg(data, channels=3)
        else:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        if spec is not None:
            # Looked up on the module at trace time: THE function play uses.
            rec[schema.FEATURE_IMAGE] = _preprocess.preprocess(image, spec)
        else:
            assert size is not None
            # A frame stored at another size than its session's (only if the
            # validator's wrong-size verdict was overridden) is fitted to batch.
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
            image = tf.cond(
                same,
                lambda: image,
                lambda: tf.cast(tf.image.resize(image, size, antialias=True), tf.uint8),
            )
            rec[schema.FEATURE_IMAGE] = tf.ensure_shape(image, (*size, 3))
        return rec

    return _plain(decode)


def _batch_preprocessor(spec: InputSpec) -> Any:
    def run(rec: Any) -> Any:
        rec[schema.FEATURE_IMAGE] = _preprocess.preprocess(rec[schema.FEATURE_IMAGE], spec)
        return rec

    return _plain(run)


def _finisher(
    cfg: LoadConfig, augment: AugmentConfig | None, radius: int, classes: schema.ClassThresholds
) -> Any:
    import tensorflow as tf

    target = cfg.target_config

    def finish(rec: Any, seed: Any = None) -> Any:
        images, context = rec[schema.FEATURE_IMAGE], rec[schema.FEATURE_CONTEXT]
        if augment is not None:
            images, context = augment_batch(images, context, seed, augment)
        if cfg.device_stage:
            flip = rec.get(FEATURE_MIRROR)
            if flip is None:
                flip = tf.zeros(tf.shape(context)[:1], tf.bool)
            images = {schema.FEATURE_IMAGE: images, FEATURE_MIRROR: flip}
            if FEATURE_TURN in rec:
                images[FEATURE_TURN] = rec[FEATURE_TURN]
        targets = make_targets(context, target, radius, classes)
        if cfg.with_meta:
            meta = {k: rec[k] for k in _META}
            return images, targets, meta
        return images, targets

    if augment is None:
        return _plain(finish)
    return _plain(lambda rec, seed: finish(rec, seed))
