"""The command line as a user runs it: real subprocesses, real models, one-line errors."""
import json
import subprocess
import sys

import pytest

from conftest import run_cli


def test_help_lists_commands_without_heavy_imports():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("tiny", "serve-model", "rewrite", "chat", "demo"):
        assert command in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys, vlmguard.cli; vlmguard.cli.build_parser(); "
                            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'httpx', 'PIL', 'fastapi') "
                            "if m in sys.modules))"], capture_output=True, text=True)
    assert probe.stdout.strip() == "[]"


def test_import_subpackages():
    probe = subprocess.run([sys.executable, "-c", "import vlmguard, vlmguard.sft, vlmguard.rl, vlmguard.rewards, "
                            "vlmguard.backends, vlmguard.format, vlmguard.guard; print('ok')"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "ok", probe.stderr


def test_tiny_command(tmp_path):
    out = run_cli("tiny", "--out", str(tmp_path), "--seed", "3")
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if not line.startswith("[")]  # DeepSpeed logs
    assert listed == ["rewriter", "target", "judge", "samples", "sft_data"]
    assert (tmp_path / "judge" / "model.safetensors").is_file()


def test_chat_end_to_end(tiny_models, target_server, example_png):
    out = run_cli("chat", "--image", str(example_png), "--text", "What animal is this?",
                  "--rewriter", f"hf:{tiny_models['rewriter']}", "--target", f"openai:{target_server}",
                  "--max-new-tokens", "8", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["fallback_used"] and r["prompt"] == "What animal is this?" and isinstance(r["answer"], str)
    assert "missing <prompt>" in r["problems"]


def test_rewrite_human_output(tiny_models, example_png):
    out = run_cli("rewrite", "--image", str(example_png), "--text", "Hi", "--fallback", "refuse",
                  "--rewriter", f"hf:{tiny_models['rewriter']}", "--max-new-tokens", "4")
    assert out.returncode == 0, out.stderr
    assert "prompt : (refused)   [fallback 'refuse'" in out.stdout


def _one_line_error(out, *needles):
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture()
def corrupt_png(tmp_path):
    from PIL import Image

    path = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), "red").save(path)
    path.write_bytes(path.read_bytes()[:70])
    return path


def test_bad_input_errors(tmp_path, tiny_models, corrupt_png):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    spec = f"hf:{tiny_models['rewriter']}"
    _one_line_error(run_cli("rewrite", "--image", str(tmp_path / "nope.png"), "--text", "x", "--rewriter", spec),
                    "image not found", "nope.png")
    _one_line_error(run_cli("rewrite", "--image", str(text), "--text", "x", "--rewriter", spec),
                    "is not an image", "notes.txt")
    _one_line_error(run_cli("rewrite", "--image", str(corrupt_png), "--text", "x", "--rewriter", spec),
                    "corrupt or truncated", "cut.png")
    _one_line_error(run_cli("rewrite", "--text", "x", "--rewriter", "gpt4:/x"), "unknown backend spec", "hf:")
    _one_line_error(run_cli("rewrite", "--text", "x", "--rewriter", "openai:http://127.0.0.1:9/v1?retries=0"),
                    "cannot connect", "127.0.0.1:9", "vlmguard serve-model")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text((tiny_models["target"] / "config.json").read_text())
    _one_line_error(run_cli("chat", "--text", "x", "--rewriter", spec, "--target", f"hf:{bare}"),
                    "has no processor", "processor.save_pretrained")
