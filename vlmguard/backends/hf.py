"""In-process transformers backend: batched, left-padded generation, images through the model's processor."""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..chat import Chat, to_processor
from ..errors import VLMGuardError
from .base import Backend, OnError, SamplingParams

log = logging.getLogger(__name__)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")


def check_model_dir(location: str, processor: str | None = None) -> None:
    """Fail early, naming the path, when a local model directory cannot hold a loadable model + processor."""
    path = Path(location).expanduser()
    looks_local = location.startswith(("/", ".", "~")) or path.exists()
    if not looks_local:
        return
    if not path.is_dir():
        raise VLMGuardError(f"model directory not found: {path} (build tiny ones with `vlmguard tiny --out DIR`, "
                            f"or give a hub id such as Qwen/Qwen2.5-VL-7B-Instruct)")
    if not (path / "config.json").is_file():
        raise VLMGuardError(f"{path} has no config.json, so it is not a transformers model directory "
                            f"(save one with model.save_pretrained({str(path)!r}))")
    if processor is None and not any((path / f).is_file() for f in PROCESSOR_FILES):
        raise VLMGuardError(f"model directory {path} has no processor or tokenizer "
                            f"({', '.join(PROCESSOR_FILES)}): save it with processor.save_pretrained({str(path)!r}) "
                            f"or name one with ?processor=PATH")


class HFBackend(Backend):
    """``hf:PATH_OR_HUB_ID`` — ``AutoModelForImageTextToText`` (or ``AutoModelForCausalLM`` for text-only
    models, which then ignore images, counted in ``stats["images_dropped"]``) plus ``AutoProcessor``."""

    @dataclass
    class Options:
        batch_size: int = 8
        """Chats per ``generate`` call."""
        dtype: str = "auto"
        """``auto`` (bfloat16 on a GPU that has it, else float32), ``float32``, ``bfloat16``, ``float16``."""
        device: str = "auto"
        """``auto``, ``cpu``, ``cuda``, ``cuda:1``..."""
        processor: str | None = None
        """Load the processor from here instead of the model directory."""

    def __init__(self, location: str, options: "HFBackend.Options | None" = None, *,
                 model: Any = None, processor: Any = None) -> None:
        super().__init__()
        self.options = options or self.Options()
        self.spec = f"hf:{location}"
        self._lock = threading.Lock()
        if model is None:
            self.precheck(location, self.options)  # before the slow imports
            model, processor = self._load(location)
        import torch

        self.model, self.processor = model, processor
        self.model.eval()
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.vision = hasattr(processor, "image_processor")
        self._torch = torch

    @classmethod
    def precheck(cls, location: str, options: "HFBackend.Options") -> None:
        check_model_dir(location, options.processor)

    @classmethod
    def from_model(cls, model: Any, processor: Any, batch_size: int = 8) -> "HFBackend":
        """Wrap an already loaded model (e.g. the policy inside a trainer)."""
        return cls(getattr(model, "name_or_path", "in-memory"), cls.Options(batch_size=batch_size),
                   model=model, processor=processor)

    def _load(self, location: str) -> tuple[Any, Any]:
        import torch
        from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor,
                                  AutoTokenizer)

        opts = self.options
        device = opts.device if opts.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if opts.dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        else:
            dtype = getattr(torch, opts.dtype, None)
            if not isinstance(dtype, torch.dtype):
                raise VLMGuardError(f"unknown dtype {opts.dtype!r} in {self.spec}: use float32, bfloat16 or float16")
        try:
            config = AutoConfig.from_pretrained(location)
            try:
                model = AutoModelForImageTextToText.from_pretrained(location, config=config, dtype=dtype)
                processor = AutoProcessor.from_pretrained(opts.processor or location)
            except ValueError:  # not an image-text-to-text architecture: a text-only LM (a text judge, say)
                model = AutoModelForCausalLM.from_pretrained(location, config=config, dtype=dtype)
                processor = AutoTokenizer.from_pretrained(opts.processor or location)
        except (OSError, json.JSONDecodeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise VLMGuardError(f"cannot load model {location!r} ({first}); for a hub id, download it first "
                                f"(`hf download {location}`) or give a local directory") from e
        return model.to(device), processor

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        params = params or SamplingParams()
        self.stats["calls"] += 1
        prepared: list[tuple[int, str, list]] = []
        out: list[str | None] = [None] * len(chats)
        for i, chat in enumerate(chats):
            try:
                prepared.append((i, *self._prompt(chat)))
            except VLMGuardError:
                if on_error == "raise":
                    raise
                self.stats["failed"] += 1
        prepared.sort(key=lambda p: len(p[1]))  # similar lengths together: less padding
        bs = max(1, self.options.batch_size)
        with self._lock:
            for start in range(0, len(prepared), bs):
                batch = prepared[start:start + bs]
                try:
                    texts = self._generate_batch([p[1] for p in batch], [im for p in batch for im in p[2]], params)
                except Exception as e:
                    if on_error == "raise":
                        raise VLMGuardError(f"generation failed in {self.spec}: {e}") from e
                    log.warning("generation failed for %d chats in %s: %s", len(batch), self.spec, e)
                    self.stats["failed"] += len(batch)
                    continue
                for (i, _, _), text in zip(batch, texts):
                    out[i] = text
        return out

    def _prompt(self, chat: Chat) -> tuple[str, list]:
        messages, images = to_processor(chat)
        if images and not self.vision:
            self.stats["images_dropped"] += len(images)
            messages = [{**m, "content": [p for p in m["content"] if p["type"] != "image"]} for m in messages]
            images = []
        if not self.vision:  # text-only templates expect plain string content
            messages = [{**m, "content": "".join(p["text"] for p in m["content"])} for m in messages]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text, images

    def _generate_batch(self, texts: list[str], images: list, params: SamplingParams) -> list[str]:
        torch = self._torch
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        inputs = (self.processor if self.vision else self.tokenizer)(**kwargs).to(self.model.device)
        gen: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": not params.greedy,
                               "pad_token_id": self.tokenizer.pad_token_id}
        if not params.greedy:
            gen.update(temperature=params.temperature, top_p=params.top_p)
        else:
            gen.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, **gen)
        texts_out = self.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return [_cut(t, params.stop) for t in texts_out]


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[:min(cuts)] if cuts else text
