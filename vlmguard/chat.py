"""Chats: OpenAI-style message lists whose content may hold images.

A ``Chat`` is ``[{"role": "system"|"user"|"assistant", "content": str | [part, ...]}]`` where a part is
``{"type": "text", "text": ...}``, ``{"type": "image", "image": <path | PIL | bytes | data URL>}`` or the
OpenAI wire form ``{"type": "image_url", "image_url": {"url": ...}}``. Every backend takes chats.
"""
from __future__ import annotations

import copy
from typing import Any

from .errors import VLMGuardError
from .images import ImageLike, load_image, to_data_url

Chat = list[dict[str, Any]]

PREFIX = "prefix"
"""Key that marks a chat's final assistant message as the start of the reply (an *assistant prefill*, the
``"prefix": true`` of DeepSeek's and Mistral's chat APIs): every backend continues that message instead of opening
a new turn, and returns only the continuation. Without the key a final assistant message is a finished turn."""


def with_prefill(chat: Chat, text: str) -> Chat:
    """The chat with the reply started: ``text`` as a final assistant message that the model continues."""
    return [*chat, {"role": "assistant", "content": text, PREFIX: True}]


def prefill(chat: Chat) -> str | None:
    """The started reply of a chat made by :func:`with_prefill`; None for a chat whose reply starts afresh."""
    last = chat[-1] if chat else None
    return text_of(last) if isinstance(last, dict) and last.get("role") == "assistant" and last.get(PREFIX) else None


def user_chat(text: str, image: ImageLike | list | tuple | None = None, system: str | None = None) -> Chat:
    """A one-turn chat: optional system message, then a user turn with the image(s) (if any) before the text."""
    shown = [] if image is None else list(image) if isinstance(image, (list, tuple)) else [image]
    parts: list[dict[str, Any]] = [{"type": "image", "image": im} for im in shown]
    parts.append({"type": "text", "text": text})
    chat: Chat = [{"role": "system", "content": system}] if system else []
    return chat + [{"role": "user", "content": parts}]


def parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The message's content as a list of parts (a plain string becomes one text part)."""
    content = message.get("content")
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise VLMGuardError(f"message content must be a string or a list of parts, got {type(content).__name__}")
    return content


def image_of(part: dict[str, Any]) -> ImageLike | None:
    """The image a content part holds (path, PIL, bytes or URL), or None for a non-image part."""
    kind = part.get("type")
    if kind == "image" or (kind is None and "image" in part):
        return part.get("image")
    if kind == "image_url" or (kind is None and "image_url" in part):
        url = part.get("image_url")
        return url.get("url") if isinstance(url, dict) else url
    return None


def images(chat: Chat) -> list[ImageLike]:
    """Every image in the chat, in order."""
    return [src for m in chat for p in parts(m) if (src := image_of(p)) is not None]


def last_user(chat: Chat) -> tuple[str, ImageLike | None]:
    """The last user turn's text and its first image (None without one)."""
    message = chat[last_user_index(chat)]
    found = images([message])
    return text_of(message), (found[0] if found else None)


def text_of(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in parts(message) if p.get("type", "text") == "text")


def last_user_index(chat: Chat) -> int:
    for i in range(len(chat) - 1, -1, -1):
        if chat[i].get("role") == "user":
            return i
    raise VLMGuardError("the chat has no user message")


def with_user_text(chat: Chat, text: str) -> Chat:
    """A copy of the chat whose last user turn keeps its images and has ``text`` as its only text."""
    out = copy.copy(chat)
    i = last_user_index(chat)
    kept = [p for p in parts(chat[i]) if image_of(p) is not None]
    out[i] = {**chat[i], "content": kept + [{"type": "text", "text": text}]}
    return out


def without_images(chat: Chat) -> Chat:
    """A copy of the chat with every image part removed (for text-only judges)."""
    out = []
    for m in chat:
        if isinstance(m.get("content"), list):
            m = {**m, "content": [p for p in m["content"] if image_of(p) is None]}
        out.append(m)
    return out


def to_openai(chat: Chat) -> list[dict[str, Any]]:
    """Wire form for an OpenAI-compatible server: images become base64 data URLs (remote URLs pass through)."""
    wire = []
    for m in chat:
        if isinstance(m.get("content"), str):
            wire.append({"role": m["role"], "content": m["content"]})
            continue
        content = []
        for p in parts(m):
            src = image_of(p)
            if src is not None:
                content.append({"type": "image_url", "image_url": {"url": to_data_url(src)}})
            else:
                content.append({"type": "text", "text": p.get("text", "")})
        wire.append({"role": m["role"], "content": content})
    return wire


def to_processor(chat: Chat) -> tuple[list[dict[str, Any]], list]:
    """Form for a transformers processor: ``{"type": "image"}`` placeholders, and the PIL images in order."""
    msgs, pil = [], []
    for m in chat:
        content = []
        for p in parts(m):
            src = image_of(p)
            if src is not None:
                pil.append(load_image(src))
                content.append({"type": "image"})
            else:
                content.append({"type": "text", "text": p.get("text", "")})
        msgs.append({"role": m["role"], "content": content})
    return msgs, pil
