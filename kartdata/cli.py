"""``kartdata``: record, validate, shard, verify and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

from kartdata import clikit

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def _root() -> None:
    """kartdata: recordings → validated, balanced, compressed TFRecord shards."""


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Directory to create the sample recordings in."),
    frames: int = typer.Option(300, help="Frames per recording."),
    sessions: int = typer.Option(
        2, help="Native sessions to make (plus one TensorKart, one CTR-AI)."
    ),
) -> None:
    """Make synthetic sample recordings in all three layouts (for trying the tools)."""
    from kartdata import synth

    out.mkdir(parents=True, exist_ok=True)
    for i in range(sessions):
        synth.make_native(out / f"native-{i}", frames, seed=i, recovery_share=0.2 if i % 2 else 0)
    synth.make_tensorkart(out / "tensorkart-0", frames, seed=100)
    synth.make_ctr(out / "ctr", min(frames, 500), seed=200)
    typer.echo(f"wrote {sessions + 2} recordings under {out}")


# -- record (issue 8) ---------------------------------------------------------


@app.command()
def record(
    out: Path = typer.Option(..., "--out", help="Directory for the takes (<player>-NNN sessions)."),
    window: str | None = typer.Option(None, help="Capture the window whose title contains this."),
    region: str | None = typer.Option(None, help="Capture this screen region: X,Y,W,H."),
    pad: list[int] = typer.Option([], help="SDL joystick index; twice for two players."),
    keyboard: bool = typer.Option(False, "--keyboard", help="Read the keyboard (X11)."),
    fps: float = typer.Option(15.0, help="Frames per second (fixed-rate schedule)."),
    player: list[str] = typer.Option([], help="Player name(s), one per player."),
    game: str = typer.Option("unknown", help="Game name stored in session.json."),
    track: str = typer.Option("unknown", help="Track name stored in session.json."),
    image_format: str = typer.Option("png", "--format", help="png (lossless) or jpg."),
    mapping: Path | None = typer.Option(None, help="Gamepad mapping file (JSON)."),
    keymap: Path | None = typer.Option(None, help="Keyboard map file (JSON)."),
    discard_seconds: float = typer.Option(5.0, help="What the discard hotkey drops."),
    wait: bool = typer.Option(False, "--wait", help="Start idle; the record hotkey starts."),
    seconds: float | None = typer.Option(None, help="Stop after this many seconds."),
    frames: int | None = typer.Option(None, help="Stop after this many frames."),
    display: str | None = typer.Option(None, help="X display (default $DISPLAY)."),
) -> None:
    """Record a game from the screen with a gamepad or the keyboard, crash-safe."""
    import signal
    import sys
    import threading

    from kartdata.devices.capture import Region, ScreenCapture
    from kartdata.record import Recorder, RecorderConfig, make_players

    tty = sys.stderr.isatty()
    players = make_players(
        window=window,
        region=Region.parse(region) if region else None,
        pads=pad,
        keyboard=keyboard,
        names=player,
        display=display,
        mapping_file=mapping,
        keymap_file=keymap,
    )
    config = RecorderConfig(
        out=out,
        fps=fps,
        game=game,
        track=track,
        image_format=image_format,
        discard_s=discard_seconds,
        start_recording=not wait,
        max_seconds=seconds,
        max_frames=frames,
        # a terminal gets a live line; a log gets one line every few seconds
        status_every_s=0.5 if tty else 5.0,
        extra={"window": window, "region": region},
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def status(line: str) -> None:
        if tty:
            sys.stderr.write("\r\x1b[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    with ScreenCapture(display) as cap:
        stats = Recorder(config, players, cap, status=status).run(stop)
    if tty:
        sys.stderr.write("\n")
    for name, st in stats.items():
        typer.echo(
            f"{name}: {st.frames} frames at {st.achieved_fps:.2f} fps (target {fps:g}), "
            f"dropped {st.dropped}, discarded {st.discarded}, "
            f"{st.bytes_written / 1e6:.1f} MB → {', '.join(st.sessions) or 'no take'}"
        )


# -- validate (issue 3) -------------------------------------------------------


@app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Recordings, or directories holding them."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
    gallery: Path | None = typer.Option(
        None, "--gallery", help="Write a PNG contact sheet of flagged frames here."
    ),
    verdicts: Path | None = typer.Option(
        None,
        "--verdicts",
        help="Verdict store directory (default $KARTKIT_CACHE/verdicts or ~/.cache/kartkit/verdicts).",
    ),
    store: bool = typer.Option(True, "--store/--no-store", help="Store the verdicts."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Open CTR-AI .npy files (unpickling runs code)."
    ),
    workers: int = typer.Option(0, help="Decoding processes (0: one per core)."),
) -> None:
    """Check recordings and store each bad frame's verdict (exit 0 clean, 1
    problems found, 2 input unusable)."""
    import json
    import sys

    from kartdata.sources import discover
    from kartdata.validate import ValidateConfig, analyse
    from kartdata.validate import report as rep
    from kartdata.validate import verdicts as vstore

    cfg = ValidateConfig(workers=workers)
    sources = discover(list(paths), trust_pickle=trust_pickle)
    results = analyse(sources, cfg)
    if store:
        for r in results:
            if r.key is not None and not r.unusable:
                vstore.save(
                    r.path,
                    r.key,
                    r.verdicts,
                    frames=r.frames,
                    config=cfg,
                    sessions_together=len(results),
                    store=verdicts,
                )
    if json_out:
        typer.echo(json.dumps(rep.to_json(results, strict=strict), indent=1))
    else:
        typer.echo(rep.to_text(results, strict=strict))
    if gallery is not None:
        from kartdata.validate.gallery import write_gallery

        shown = write_gallery(results, gallery)
        typer.echo(f"gallery: {shown} flagged frame(s) in {gallery}", err=True)
    sys.exit(rep.exit_code(results, strict=strict))


# -- shard, verify, info (issue 2) --------------------------------------------

_COMPRESSIONS = {"gzip": "GZIP", "zlib": "ZLIB", "none": ""}


@app.command()
def shard(
    sources: list[Path] = typer.Argument(
        ..., help="Recordings, or directories holding them (native, TensorKart, CTR-AI)."
    ),
    out: str = typer.Option(..., "--out", help="Dataset directory (created, or appended to)."),
    compression: str | None = typer.Option(
        None, help="Record compression: gzip (default), zlib or none."
    ),
    quality: int | None = typer.Option(None, help="JPEG quality (default 90)."),
    max_width: int | None = typer.Option(None, help="Store images at most this wide (320)."),
    max_height: int | None = typer.Option(None, help="Store images at most this high (240)."),
    shard_mb: float = typer.Option(128.0, "--shard-mb", help="Target shard size in MiB."),
    left_below: float | None = typer.Option(None, help="x below this is 'left' (-0.15)."),
    right_above: float | None = typer.Option(None, help="x above this is 'right' (0.15)."),
    workers: int | None = typer.Option(
        None,
        help="Worker processes (default: all cores; 0: in this process); "
        "with --engine ray: actors (default: one per cluster CPU).",
    ),
    keep_flagged: bool = typer.Option(
        False, "--keep-flagged", help="Keep frames validation flags (reason kept in the index)."
    ),
    validate: bool = typer.Option(
        True, "--validate/--no-validate", help="Exclude frames kartdata validate flags."
    ),
    trust_pickle: bool = typer.Option(
        False,
        "--trust-pickle",
        help="Load CTR-AI .npy pickles. Unpickling runs code from the file: trusted files only.",
    ),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
    ),
    engine: str = typer.Option(
        "local", help="local (worker processes here) or ray (actors on a Ray cluster)."
    ),
    address: str | None = typer.Option(
        None, help="Ray cluster to join (auto, host:6379, ray://host:10001); default: local Ray."
    ),
) -> None:
    """Stream recordings into compressed TFRecord shards grouped by stratum."""
    import os
    import sys

    from kartdata.errors import DatasetError
    from kartdata.schema import ClassThresholds
    from kartdata.shard import ShardConfig, encoding_with
    from kartdata.shard import shard as run_shard

    if compression is not None and compression.lower() not in _COMPRESSIONS:
        raise DatasetError(f"--compression {compression!r} is not one of gzip, zlib, none")
    encoding = encoding_with(
        out,
        compression=None if compression is None else _COMPRESSIONS[compression.lower()],
        quality=quality,
        max_width=max_width,
        max_height=max_height,
    )
    classes = None
    if left_below is not None or right_above is not None:
        d = ClassThresholds()
        classes = ClassThresholds(
            left_below=d.left_below if left_below is None else left_below,
            right_above=d.right_above if right_above is None else right_above,
        )
    if shard_mb <= 0:
        raise DatasetError(f"--shard-mb {shard_mb} is not positive")
    config = ShardConfig(
        encoding=encoding,
        classes=classes,
        target_shard_bytes=int(shard_mb * (1 << 20)),
        # With Ray, no --workers means one actor per CPU of the cluster (0).
        workers=(0 if engine == "ray" else os.cpu_count() or 1) if workers is None else workers,
        keep_flagged=keep_flagged,
        validate=validate,
        trust_pickle=trust_pickle,
        progress=sys.stderr.isatty() if progress is None else progress,
        engine=engine,  # type: ignore[arg-type]  # ShardConfig checks it
        address=address,
    )
    report = run_shard(list(sources), out, config)
    typer.echo(report.summary())


@app.command()
def verify(
    dataset: str = typer.Argument(..., help="Dataset directory."),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
    rehash: bool = typer.Option(
        True,
        "--hash/--no-hash",
        help="Re-read and re-hash every shard (--no-hash: sizes and indexes only, fast).",
    ),
) -> None:
    """Re-check every shard's sha256, size, records and index against the manifest."""
    from kartdata.manifest import verify as run_verify

    report = run_verify(dataset, progress=progress, rehash=rehash)
    for line in report.problems:
        typer.echo(f"error: {line}", err=True)
    for name in report.orphans:
        typer.echo(f"note: {name} is not in the manifest (the next `shard` deletes it)", err=True)
    if not report.ok:
        raise typer.Exit(1)
    how = "verified" if rehash else "sizes and indexes checked (not re-hashed)"
    typer.echo(
        f"ok: {report.shards} shards, {report.frames} records, {report.bytes / 1e6:.1f} MB {how}"
    )


@app.command()
def info(
    dataset: str = typer.Argument(..., help="Dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Sessions, strata, counts, sizes and exclusions of a dataset."""
    import json

    from kartdata.manifest import format_summary, summary

    data = summary(dataset)
    typer.echo(json.dumps(data, indent=1) if as_json else format_summary(data))


def main() -> None:
    clikit.run(app)


if __name__ == "__main__":
    main()
