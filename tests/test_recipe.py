"""``vlmguard recipe``: stages in order, skipped once done, resumed after a failure, timed."""
import json
import sys

import pytest
import yaml

from vlmguard.errors import VLMGuardError
from vlmguard.recipe import run_recipe


def _recipe(tmp_path, fail_second: bool) -> str:
    log = tmp_path / "log.txt"
    flag = tmp_path / "second-may-run"
    if not fail_second:
        flag.touch()
    step = ("import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
            "open(sys.argv[2], 'a').write(p.name + '\\n'); p.touch()")
    second = ("import sys, pathlib; pathlib.Path(sys.argv[1]).exists() or sys.exit(3); "
              "open(sys.argv[3], 'a').write('b\\n'); pathlib.Path(sys.argv[2]).touch()")
    stages = [{"name": "a", "run": f'python -c "{step}" {tmp_path / "a"} {log}', "done": str(tmp_path / "a")},
              {"name": "b", "run": f'python -c "{second}" {flag} {tmp_path / "b"} {log}', "done": str(tmp_path / "b")},
              {"name": "c", "run": f'python -c "{step}" {tmp_path / "c"} {log}', "done": str(tmp_path / "c")}]
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"out": str(tmp_path / "out"), "stages": stages}))
    return str(path)


def test_stages_resume_after_a_failure_and_are_timed(tmp_path):
    path = _recipe(tmp_path, fail_second=True)
    with pytest.raises(VLMGuardError, match="stage 'b' failed .exit 3.*rerun the same command"):
        run_recipe(path)
    assert (tmp_path / "log.txt").read_text().split() == ["a"]
    (tmp_path / "second-may-run").touch()  # the cause is fixed: the same command continues after 'a'
    timing = run_recipe(path)
    assert (tmp_path / "log.txt").read_text().split() == ["a", "b", "c"] and list(timing) == ["a", "b", "c"]
    table = (tmp_path / "out" / "timing.md").read_text()
    assert "| a |" in table and "| c |" in table and "**total**" in table
    assert json.loads((tmp_path / "out" / "timing.json").read_text())["b"]["seconds"] >= 0
    run_recipe(path)  # everything done: nothing runs again
    assert (tmp_path / "log.txt").read_text().split() == ["a", "b", "c"]
    run_recipe(path, only="b")
    run_recipe(path, start="b")
    assert (tmp_path / "log.txt").read_text().split() == ["a", "b", "c", "b", "b", "c"]


def test_bad_recipes(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"out": "o", "stages": [{"name": "x", "run": "true"}]}))
    with pytest.raises(VLMGuardError, match=r"stages\[0\] needs done"):
        run_recipe(str(bad))
    with pytest.raises(VLMGuardError, match="--only 'nope': no such stage"):
        run_recipe(_recipe(tmp_path, fail_second=False), only="nope")
    lying = tmp_path / "lying.yaml"
    lying.write_text(yaml.safe_dump({"out": str(tmp_path / "o"), "stages": [
        {"name": "x", "run": f"{sys.executable} -c pass", "done": str(tmp_path / "never")}]}))
    with pytest.raises(VLMGuardError, match="did not write"):
        run_recipe(str(lying))


def test_the_real_recipe_records_every_threshold_its_eval_reads():
    """configs/recipes/offline_real.yaml: each rewriter the eval decides with ``threat_threshold: auto`` gets a
    ``vlmguard threshold … --save`` stage for its own folder, after its training and before the eval (else the
    eval stops on a missing file, or reads one chosen for other weights)."""
    import shlex
    from pathlib import Path

    from vlmguard.backends import parse_spec
    from vlmguard.eval import EvalConfig
    from vlmguard.recipe import load_recipe
    from vlmguard.threshold import THRESHOLD_FILE

    _, stages = load_recipe("configs/recipes/offline_real.yaml")
    names = [s.name for s in stages]
    argv = {s.name: shlex.split(s.run) for s in stages}
    evaluation = next(n for n in names if argv[n][:2] == ["vlmguard", "eval"])
    config = EvalConfig.load(argv[evaluation][argv[evaluation].index("--config") + 1])
    folders = [Path(parse_spec(d.options["rewriter"])[1]) for d in config.defences.values()
               if d.options.get("threat_threshold") == "auto"]
    assert len(folders) == 3  # the SFT rewriter and both GRPO seeds
    for folder in folders:
        trained = next(n for n in names if Path(stages[names.index(n)].done).parent == folder
                       and argv[n][1] in ("sft", "grpo"))
        chosen = next(n for n in names if Path(stages[names.index(n)].done) == folder / THRESHOLD_FILE)
        assert names.index(trained) < names.index(chosen) < names.index(evaluation)
        assert argv[chosen][:2] == ["vlmguard", "threshold"] and "--save" in argv[chosen]
        assert Path(parse_spec(argv[chosen][2])[1]) == folder
        assert argv[chosen][argv[chosen].index("--data") + 1] == "data/evalset/train.jsonl"  # never the held-out
