"""In-process transformers backend: batched, left-padded generation, images through the model's processor."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

from ..chat import Chat, prefill, to_processor
from ..errors import VLMGuardError
from .base import Backend, OnError, SamplingParams, add_logprob

log = logging.getLogger(__name__)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json")


ADAPTER_CONFIG = "adapter_config.json"


def local_path(location: str) -> Path | None:
    """``location`` as a local path when it names one (starts with /, . or ~, or exists), else None (a hub id)."""
    path = Path(location).expanduser()
    return path if location.startswith(("/", ".", "~")) or path.exists() else None


def absolute_local(location: str) -> str:
    """An existing local folder as an absolute path (so adapters and run configs record where it is); else as is."""
    path = Path(location).expanduser()
    return str(path.resolve()) if path.is_dir() else location


def adapter_base(path: str | Path) -> str | None:
    """The base model a local PEFT (LoRA) adapter folder was trained on; None when ``path`` is no adapter folder."""
    file = Path(path).expanduser() / ADAPTER_CONFIG
    if not file.is_file():
        return None
    try:
        base = json.loads(file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise VLMGuardError(f"{file} is not a readable adapter config ({e})") from e
    if not base:
        raise VLMGuardError(f"{file} names no base_model_name_or_path: give the base model (?base=PATH_OR_ID)")
    return base


def check_model_dir(location: str, processor: str | None = None, *, adapters: bool = False, base: str | None = None,
                    base_fix: str = "name it with ?base=PATH_OR_ID") -> None:
    """Fail early, naming the path, when a local model directory cannot hold a loadable model + processor.
    With ``adapters``, a LoRA adapter folder is accepted when its base model (``base`` or the one the adapter
    names) passes the same check; ``base_fix`` is the hint printed when it does not."""
    path = local_path(location)
    if path is None:
        return
    if not path.is_dir():
        raise VLMGuardError(f"model directory not found: {path} (build tiny ones with `vlmguard tiny --out DIR`, "
                            f"or give a hub id such as Qwen/Qwen2.5-VL-7B-Instruct)")
    if (path / ADAPTER_CONFIG).is_file():
        if not adapters:
            raise VLMGuardError(f"{path} is a LoRA adapter, not a full model: merge it into its base first "
                                f"(`vlmguard export {path} --repo-id NAME --dry-run DIR`, then use DIR)")
        base = base or adapter_base(path)
        base_path = local_path(base)
        if base_path is not None and not base_path.is_dir():
            raise VLMGuardError(f"LoRA adapter {path} was trained on {base}, which is not there: {base_fix}")
        own = any((path / f).is_file() for f in PROCESSOR_FILES)
        try:
            check_model_dir(base, processor or (str(path) if own else None))
        except VLMGuardError as e:
            raise VLMGuardError(f"base model of LoRA adapter {path}: {e}") from None
        return
    if not (path / "config.json").is_file():
        raise VLMGuardError(f"{path} has no config.json, so it is not a transformers model directory "
                            f"(save one with model.save_pretrained({str(path)!r}))")
    if processor is None and not any((path / f).is_file() for f in PROCESSOR_FILES):
        raise VLMGuardError(f"model directory {path} has no processor or tokenizer "
                            f"({', '.join(PROCESSOR_FILES)}): save it with processor.save_pretrained({str(path)!r}) "
                            f"or name one with ?processor=PATH")


def load_pretrained(location: str, dtype: Any = "auto", base: str | None = None,
                    processor: str | None = None) -> tuple[Any, Any]:
    """Model and processor from a model folder or hub id, or from a LoRA adapter (folder or hub id) merged into
    its base (``base``, default: the one the adapter names). ``AutoModelForImageTextToText`` + ``AutoProcessor``;
    a text-only architecture falls back to ``AutoModelForCausalLM`` + ``AutoTokenizer``."""
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor,
                              AutoTokenizer)
    from transformers.utils.peft_utils import find_adapter_config_file

    try:
        adapter_file = find_adapter_config_file(location)
        if adapter_file:
            base = base or adapter_base(Path(adapter_file).parent)
        weights = base if adapter_file else location

        def load_processor(cls):
            try:
                return cls.from_pretrained(processor or location)
            except OSError:
                if not adapter_file or processor:
                    raise
                return cls.from_pretrained(weights)  # an adapter saved without its processor

        config = AutoConfig.from_pretrained(weights)
        try:
            model = AutoModelForImageTextToText.from_pretrained(weights, config=config, dtype=dtype)
            proc = load_processor(AutoProcessor)
        except ValueError:  # not an image-text-to-text architecture: a text-only LM (a text judge, say)
            model = AutoModelForCausalLM.from_pretrained(weights, config=config, dtype=dtype)
            proc = load_processor(AutoTokenizer)
        if adapter_file:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, location).merge_and_unload()
    except (OSError, json.JSONDecodeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VLMGuardError(f"cannot load model {location!r} ({first}); for a hub id, download it first "
                            f"(`hf download {location}`) or give a local directory") from e
    return model, proc


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
        base: str | None = None
        """For a LoRA adapter: its base model (default: the adapter's ``base_model_name_or_path``)."""

    def __init__(self, location: str, options: "HFBackend.Options | None" = None, *,
                 model: Any = None, processor: Any = None) -> None:
        super().__init__()
        self.options = options or self.Options()
        self.spec = f"hf:{location}"
        location = str(Path(location).expanduser()) if location.startswith("~") else location
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
        check_model_dir(location, options.processor, adapters=True, base=options.base)

    @classmethod
    def from_model(cls, model: Any, processor: Any, batch_size: int = 8) -> "HFBackend":
        """Wrap an already loaded model (e.g. the policy inside a trainer)."""
        return cls(getattr(model, "name_or_path", "in-memory"), cls.Options(batch_size=batch_size),
                   model=model, processor=processor)

    def _load(self, location: str) -> tuple[Any, Any]:
        import torch

        opts = self.options
        device = opts.device if opts.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if opts.dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        else:
            dtype = getattr(torch, opts.dtype, None)
            if not isinstance(dtype, torch.dtype):
                raise VLMGuardError(f"unknown dtype {opts.dtype!r} in {self.spec}: use float32, bfloat16 or float16")
        model, processor = load_pretrained(location, dtype, opts.base, opts.processor)
        return model.to(device), processor

    def generate(self, chats: Sequence[Chat], params: SamplingParams | None = None,
                 on_error: OnError = "raise") -> list[str | None]:
        params = params or SamplingParams()
        out: list[str | None] = [None] * len(chats)
        prepared = self._prepare(chats, on_error)
        prepared.sort(key=lambda p: len(p[1]))  # similar lengths together: less padding
        bs = max(1, self.options.batch_size)
        with self._lock:
            for start in range(0, len(prepared), bs):
                batch = prepared[start:start + bs]
                try:
                    texts = self._generate_batch([p[1] for p in batch], [im for p in batch for im in p[2]], params)
                except (VLMGuardError, ValueError, RuntimeError) as e:
                    self._batch_failed(e, "generation", len(batch), on_error)
                    continue
                for (i, _, _), text in zip(batch, texts):
                    out[i] = text
        return out

    def _batch_failed(self, e: Exception, what: str, n: int, on_error: OnError) -> None:
        """Called while handling ``e``, raised by a batch of ``n`` chats: a problem with the batch's data (an image
        the processor rejects, an input the model cannot take) fails these chats (counted; VLMGuardError with
        ``on_error="raise"``); out of memory and programming errors (TypeError, KeyError, NotImplementedError,
        ...: callers catch only VLMGuardError, ValueError and RuntimeError) propagate as they are."""
        msg = str(e).lower()
        if (isinstance(e, (NotImplementedError, RecursionError, self._torch.cuda.OutOfMemoryError))
                or "out of memory" in msg or "can't allocate memory" in msg):
            raise e
        if on_error == "raise":
            raise VLMGuardError(f"{what} failed in {self.spec}: {e}") from e
        log.warning("%s failed for %d chats in %s: %s", what, n, self.spec, e)
        self.stats["failed"] += n

    def _prompt(self, chat: Chat) -> tuple[str, list]:
        """The chat through the model's template (a prefilled reply continued, see :data:`~vlmguard.chat.PREFIX`).
        Text that spells one of the tokenizer's special tokens is defused first, so message content never
        tokenizes into control tokens (framing safety)."""
        from ..guard import defuse

        messages, images = to_processor(chat)
        specials = self._special_tokens()
        messages = [{**m, "content": [{**p, "text": defuse(p["text"], specials)} if p["type"] == "text" else p
                                      for p in m["content"]]} for m in messages]
        if images and not self.vision:
            self.stats["images_dropped"] += len(images)
            messages = [{**m, "content": [p for p in m["content"] if p["type"] != "image"]} for m in messages]
            images = []
        if not self.vision:  # text-only templates expect plain string content
            messages = [{**m, "content": "".join(p["text"] for p in m["content"])} for m in messages]
        started = prefill(chat) is not None
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=not started,
                                                  continue_final_message=started)
        return text, images

    def _special_tokens(self) -> list[str]:
        if not hasattr(self, "_specials"):
            tok = self.tokenizer
            added = [t.content for t in getattr(tok, "added_tokens_decoder", {}).values() if getattr(t, "special", False)]
            self._specials = sorted({*tok.all_special_tokens, *added}, key=len)
        return self._specials

    @property
    def accepts_images(self) -> bool:
        return self.vision

    def _prepare(self, chats: Sequence[Chat], on_error: OnError) -> list[tuple[int, str, list]]:
        """(index, templated prompt, images) of each chat that can be prompted; a bad chat raises or is counted."""
        self.stats["calls"] += 1
        prepared = []
        for i, chat in enumerate(chats):
            try:
                prepared.append((i, *self._prompt(chat)))
            except VLMGuardError:
                if on_error == "raise":
                    raise
                self.stats["failed"] += 1
        return prepared

    def _inputs(self, texts: list[str], images: list):
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        return (self.processor if self.vision else self.tokenizer)(**kwargs).to(self.model.device)

    def next_token_logprobs(self, chats: Sequence[Chat], top_k: int = 20,
                            on_error: OnError = "raise") -> list[dict[str, float] | None]:
        """One forward pass per batch; the last position's log-softmax (left padding puts every prompt's last
        token there), its ``top_k`` tokens decoded one by one (tokens that decode alike are summed)."""
        torch = self._torch
        out: list[dict[str, float] | None] = [None] * len(chats)
        prepared = self._prepare(chats, on_error)
        bs = max(1, self.options.batch_size)
        with self._lock:
            for start in range(0, len(prepared), bs):
                batch = prepared[start:start + bs]
                try:
                    inputs = self._inputs([p[1] for p in batch], [im for p in batch for im in p[2]])
                    with torch.inference_mode():
                        logits = self._last_logits(inputs)
                except (VLMGuardError, ValueError, RuntimeError) as e:
                    self._batch_failed(e, "scoring", len(batch), on_error)
                    continue
                top = torch.log_softmax(logits, dim=-1).topk(min(top_k, logits.shape[-1]), dim=-1)
                for (i, _, _), values, ids in zip(batch, top.values.tolist(), top.indices.tolist()):
                    probs: dict[str, float] = {}
                    for token_id, value in zip(ids, values):
                        add_logprob(probs, self.tokenizer.decode([token_id]), value)
                    out[i] = probs
        return out

    def _last_logits(self, inputs) -> Any:
        """The last position's logits only (``logits_to_keep=1``: full logits of a batch of 300-token prompts over
        a 152k vocabulary would take gigabytes); models whose forward lacks the argument compute them all."""
        try:
            return self.model(**inputs, logits_to_keep=1).logits[:, -1, :].float()
        except TypeError:
            return self.model(**inputs).logits[:, -1, :].float()

    def _generation_kwargs(self, params: SamplingParams) -> dict[str, Any]:
        """``model.generate`` keyword arguments for ``params`` (and the torch seed set, when it has one)."""
        gen: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": not params.greedy,
                               "pad_token_id": self.tokenizer.pad_token_id}
        if not params.greedy:
            gen.update(temperature=params.temperature, top_p=params.top_p)
        else:
            gen.update(temperature=None, top_p=None, top_k=None)
        if params.seed is not None:
            self._torch.manual_seed(params.seed)
        return gen

    def _generate_batch(self, texts: list[str], images: list, params: SamplingParams) -> list[str]:
        torch = self._torch
        inputs = self._inputs(texts, images)
        gen = self._generation_kwargs(params)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, **gen)
        texts_out = self.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return [_cut(t, params.stop) for t in texts_out]

    async def astream(self, chat: Chat, params: SamplingParams | None = None) -> AsyncIterator[str]:
        """``model.generate`` with a ``TextIteratorStreamer`` in a worker thread (holding the backend's lock, so it
        waits for batched calls in flight): text pieces as tokens are decoded, the same text ``generate`` returns.
        Stop strings cut the stream (text that may begin one is held back until it is decided) and end
        generation; so does closing the iterator early."""
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        torch = self._torch
        params = params or SamplingParams()
        self.stats["calls"] += 1
        text, images = self._prompt(chat)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        halt, failure = threading.Event(), []

        class Halt(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

        def work() -> None:
            try:
                with self._lock:
                    inputs = self._inputs([text], images)
                    gen = self._generation_kwargs(params)
                    with torch.inference_mode():
                        self.model.generate(**inputs, **gen, streamer=streamer,
                                            stopping_criteria=StoppingCriteriaList([Halt()]))
            except BaseException as e:  # re-raised in the consumer
                failure.append(e)
                streamer.end()  # unblock the consumer

        worker = threading.Thread(target=work, name="hf-astream", daemon=True)
        worker.start()
        pieces, done, full, sent = iter(streamer), object(), "", 0
        try:
            while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
                full += piece
                safe, stopped = _safe_prefix(full, params.stop)
                if safe > sent:
                    yield full[sent:safe]
                    sent = safe
                if stopped:
                    return
            await asyncio.to_thread(worker.join)
            if failure:
                e = failure[0]
                if isinstance(e, (VLMGuardError, ValueError, RuntimeError)):
                    self._batch_failed(e, "generation", 1, "raise")
                raise e
            if len(full) > sent:
                yield full[sent:]
        finally:
            halt.set()  # a stop string was found, the caller went away, or it is over anyway


def _cut(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[:min(cuts)] if cuts else text


def _safe_prefix(text: str, stop: Sequence[str]) -> tuple[int, bool]:
    """For a text still growing: how much of it ``_cut`` of any continuation keeps for sure, and whether that is
    final (a stop string occurs and no earlier one can still complete). The end of ``text`` that may begin a stop
    string is held back."""
    stop = [s for s in stop if s]
    found = [text.find(s) for s in stop if s in text]
    first = min(found) if found else len(text)
    partial = min((i for i in range(max(0, len(text) - max(map(len, stop), default=0) + 1), len(text) + 1)
                   if any(s.startswith(text[i:]) and len(text) - i < len(s) for s in stop)), default=len(text))
    return min(first, partial), bool(found) and first <= partial
