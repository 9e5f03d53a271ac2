import pytest

from vlmguard.backends import load_backend, parse_spec
from vlmguard.backends.openai import OpenAIBackend
from vlmguard.errors import VLMGuardError


def test_parse_spec():
    assert parse_spec("openai:http://127.0.0.1:8000/v1?model=m&concurrency=4") == (
        "openai", "http://127.0.0.1:8000/v1", {"model": "m", "concurrency": "4"})
    assert parse_spec("hf:Qwen/Qwen2.5-VL-7B-Instruct") == ("hf", "Qwen/Qwen2.5-VL-7B-Instruct", {})


def test_options_are_typed():
    b = load_backend("openai:http://127.0.0.1:9/v1?model=m&concurrency=3&timeout=2.5&retries=0")
    assert isinstance(b, OpenAIBackend)
    assert (b.options.concurrency, b.options.timeout, b.options.retries, b.model) == (3, 2.5, 0, "m")


@pytest.mark.parametrize("spec, message", [
    ("llama:/x", "unknown backend spec"),
    ("/just/a/path", "unknown backend spec"),
    ("hf:", "unknown backend spec"),
    ("openai:http://h/v1?colour=red", "unknown option(s) colour"),
    ("openai:http://h/v1?concurrency=many", "concurrency='many'"),
    ("openai:127.0.0.1:8000", "needs a base URL"),
])
def test_bad_specs(spec, message):
    with pytest.raises(VLMGuardError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_backend(spec)


def test_vllm_missing_is_a_clear_error():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vllm is installed")
    except ImportError:
        pass
    with pytest.raises(VLMGuardError, match=r"pip install 'vlmguard-r1\[vllm\]'"):
        load_backend("vllm:/some/model")
