"""``pip install .`` (not editable) maps sft/, rl/, rewards/ into vlmguard and ships the prompt files."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_non_editable_install(tmp_path):
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(site), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    probe = subprocess.run(
        [sys.executable, "-c", "import vlmguard.sft, vlmguard.rl, vlmguard.rewards, vlmguard.backends.hf; "
         "from vlmguard.prompts import load_prompt; import vlmguard; "
         "print(vlmguard.rl.__file__); print(vlmguard.__file__); print(len(load_prompt('rewriter_system')))"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    assert probe.returncode == 0, probe.stderr
    rl_file, core_file, prompt_len = probe.stdout.split()
    assert rl_file == str(site / "vlmguard" / "rl" / "__init__.py") and core_file.startswith(str(site))
    assert int(prompt_len) > 100
    assert (site / "bin" / "vlmguard").is_file()
