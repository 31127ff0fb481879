"""Reader for CTR-AI recordings (Odiurd/CTR-AI): one ``.npy`` per 500 frames.

File names are ``yyyy-mm-dd_hh-mm-ss_<user>_<track>_<mode>_<n>.npy`` (the track
may hold underscores, the user may not). Each file is a pickled numpy object
array of ``[image, label]`` pairs:

- ``image``: (90, 160, 3) uint8, stored BGR (the recorder converted twice), so
  the reader flips it to RGB.
- ``label``: one-hot ``[left, forward, right]`` → x = −1 / 0 / +1, with A (gas)
  held, as CTR-AI's player always held gas.
- mode letter ``N`` normal, ``A`` adjustments (recovery), ``D`` a dark section:
  kept as the session tag ``ctr-mode-<letter>``; ``A`` also gets ``recovery``.

Loading an object array unpickles it, and unpickling runs whatever code the
file asks for. So a :class:`CtrFile` refuses to open unless the caller says the
file is trusted (``trust_pickle=True``, the CLI's ``--trust-pickle``). CTR-AI
recorded at 10 FPS and saved no timestamps: ``t_ns`` is synthesised from the
pair order at 100 ms.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from kartdata.errors import SourceError, UntrustedPickleError
from kartdata.schema import RECOVERY_TAG, Pad, SessionMeta
from kartdata.sources.base import Frame, fingerprint

NOMINAL_FPS = 10.0
FRAME_NS = int(1e9 / NOMINAL_FPS)
#: Label index → x axis.
STEERING = (-1.0, 0.0, 1.0)
_NAME = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})_(?P<time>\d{2}-\d{2}-\d{2})_(?P<user>[^_]+)_"
    r"(?P<track>.+)_(?P<mode>[A-Za-z])_(?P<n>\d+)"
)


def mode_tag(mode: str) -> str:
    return f"ctr-mode-{mode}"


class CtrFile:
    """Reads one CTR-AI ``.npy`` file; only with ``trust_pickle=True``."""

    layout = "ctr"

    def __init__(
        self, path: str | Path, trust_pickle: bool = False, *, key: str | None = None
    ) -> None:
        self.path = Path(path)
        if not trust_pickle:
            raise UntrustedPickleError(
                f"{self.path}: CTR-AI .npy files are pickles, and loading one runs code from the "
                "file; pass --trust-pickle (trust_pickle=True) only for files you trust"
            )
        self._meta: SessionMeta | None = None
        self._key = key

    @property
    def key(self) -> str:
        """The file's name stands for the recording (CTR-AI names each part by
        date, time, user, track, mode and number); its bytes hold every frame."""
        if self._key is None:
            self._key = f"ctr-{fingerprint(self.path.name.encode())}-{fingerprint(self.path)}"
        return self._key

    @property
    def meta(self) -> SessionMeta:
        if self._meta is None:
            self._meta = self._meta_from(self._load())
        return self._meta

    def _meta_from(self, items: Any) -> SessionMeta:
        height, width = (_image(items, 0, self.path).shape[:2]) if len(items) else (0, 0)
        m = _NAME.fullmatch(self.path.stem)
        tags: tuple[str, ...] = ()
        created, track, player, extra = "", "unknown", "unknown", {"layout": self.layout}
        if m:
            mode = m.group("mode").upper()
            tags = (RECOVERY_TAG, mode_tag(mode)) if mode == "A" else (mode_tag(mode),)
            track, player = m.group("track"), m.group("user")
            created = _created(m.group("date"), m.group("time"))
            extra |= {"mode": mode, "part": int(m.group("n"))}
        return SessionMeta(
            game="crash-team-racing",
            track=track,
            player=player,
            width=int(width),
            height=int(height),
            fps=NOMINAL_FPS,
            created=created,
            tags=tags,
            image_format="npy",
            extra=extra,
        )

    def frames(self) -> Iterator[Frame]:
        items = self._load()
        if self._meta is None:
            self._meta = self._meta_from(items)
        meta = self._meta
        for i in range(len(items)):
            where = f"{self.path}[{i}]"
            image = _image(items, i, self.path)
            label = _label(items, i, self.path)
            yield Frame(
                index=i,
                t_ns=i * FRAME_NS,
                pad=Pad(x=STEERING[label], buttons=frozenset({"a"})),
                tags=meta.tags,
                where=where,
                line=None,
                _load=_loader(image),
            )

    def _load(self) -> Any:
        try:
            items = np.load(self.path, allow_pickle=True)
        except FileNotFoundError:
            raise SourceError(f"{self.path}: missing") from None
        except PermissionError:
            raise SourceError(f"{self.path}: not readable (permission denied)") from None
        except (
            ValueError,
            OSError,
            EOFError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
            AttributeError,
            ImportError,
            IndexError,
            TypeError,
        ) as e:
            raise SourceError(f"{self.path}: not a readable .npy file ({e})") from None
        if not isinstance(items, np.ndarray) or items.ndim < 1:
            raise SourceError(f"{self.path}: expected an array of [image, label] pairs")
        return items


def _pair(items: Any, i: int, path: Path) -> tuple[Any, Any]:
    try:
        image, label = items[i]
    except (TypeError, ValueError):
        raise SourceError(f"{path}[{i}]: expected an [image, label] pair") from None
    return image, label


def _image(items: Any, i: int, path: Path) -> np.ndarray:
    image, _ = _pair(items, i, path)
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
        or 0 in image.shape
    ):
        shape = getattr(image, "shape", None)
        raise SourceError(
            f"{path}[{i}]: frame {i}: image is not an (H, W, 3) uint8 array "
            f"(got {type(image).__name__} {shape})"
        )
    return image


def _label(items: Any, i: int, path: Path) -> int:
    _, label = _pair(items, i, path)
    try:
        v = np.asarray(label, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        v = np.zeros(0)
    if v.shape != (3,) or not np.isin(v, (0.0, 1.0)).all() or v.sum() != 1:
        raise SourceError(
            f"{path}[{i}]: frame {i}: label {label!r} is not a one-hot [left, forward, right]"
        )
    return int(v.argmax())


def _loader(bgr: np.ndarray):  # -> Callable[[], np.ndarray]
    return lambda: np.ascontiguousarray(bgr[..., ::-1])


def _created(date: str, time: str) -> str:
    try:
        return datetime.strptime(f"{date} {time}", "%Y-%m-%d %H-%M-%S").isoformat()
    except ValueError:
        return ""
