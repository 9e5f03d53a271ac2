import logging

import pytest

from vlmguard.errors import VLMGuardError
from vlmguard.logs import setup_logging


@pytest.fixture(autouse=True)
def fresh_logger(monkeypatch):
    """Each test configures the ``vlmguard`` logger from scratch and leaves it as it found it."""
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "VLMGUARD_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    logger = logging.getLogger("vlmguard")
    saved = logger.handlers[:], logger.level, logger.propagate
    # as if never configured: an earlier in-process `vlmguard` command leaves it non-propagating, and pytest then
    # attaches its capture handlers to it for every phase
    logger.handlers, logger.propagate = [], True
    yield logger
    logger.handlers, logger.level, logger.propagate = saved


def test_project_info_reaches_stderr(capfd, fresh_logger):
    logging.getLogger("vlmguard.eval").info("before setup")  # no handler yet: dropped
    setup_logging()
    logging.getLogger("vlmguard.eval").info("judged %d samples", 3)
    logging.getLogger("vlmguard.eval").debug("not at info")
    err = capfd.readouterr().err
    assert "INFO vlmguard.eval: judged 3 samples" in err
    assert "before setup" not in err and "not at info" not in err and "[rank" not in err
    assert fresh_logger.propagate is False


def test_rank_prefix_under_multi_process_launch(capfd, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    setup_logging("info")
    logging.getLogger("vlmguard.rl").info("step done")
    assert "INFO [rank 1] vlmguard.rl: step done" in capfd.readouterr().err


def test_single_process_launch_has_no_prefix(capfd, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    setup_logging()
    logging.getLogger("vlmguard").info("hello")
    assert "INFO vlmguard: hello" in capfd.readouterr().err


def test_invalid_level_lists_valid_ones(monkeypatch):
    with pytest.raises(VLMGuardError, match="loud.*DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        setup_logging("loud")
    monkeypatch.setenv("VLMGUARD_LOG_LEVEL", "chatty")
    with pytest.raises(VLMGuardError, match="VLMGUARD_LOG_LEVEL.*chatty"):
        setup_logging()


def test_idempotent(capfd, fresh_logger):
    setup_logging()
    setup_logging("debug")
    assert len(fresh_logger.handlers) == 1 and fresh_logger.level == logging.DEBUG
    logging.getLogger("vlmguard.x").debug("once")
    assert capfd.readouterr().err.count("once") == 1


def test_level_from_env_and_argument_wins(capfd, monkeypatch, fresh_logger):
    monkeypatch.setenv("VLMGUARD_LOG_LEVEL", "warning")
    setup_logging()
    assert fresh_logger.level == logging.WARNING
    logging.getLogger("vlmguard.x").info("quiet")
    logging.getLogger("vlmguard.x").warning("loud")
    err = capfd.readouterr().err
    assert "loud" in err and "quiet" not in err
    setup_logging("ERROR")
    assert fresh_logger.level == logging.ERROR


def test_cli_log_level_option(capfd, monkeypatch):
    from vlmguard import cli

    seen = {}
    monkeypatch.setattr(cli, "cmd_demo", lambda args: seen.setdefault("level", logging.getLogger("vlmguard").level))
    assert cli.main(["--log-level", "debug", "demo", "--models", "unused"]) == 0
    assert seen["level"] == logging.DEBUG
    assert cli.main(["--log-level", "nope", "demo", "--models", "unused"]) == 1
    assert "unknown log level 'nope'" in capfd.readouterr().err


@pytest.fixture(scope="module")
def tiny_target(tiny_models):
    from vlmguard.backends.hf import HFBackend

    return HFBackend(str(tiny_models["target"]), HFBackend.Options(device="cpu", batch_size=4))


@pytest.mark.parametrize("error", [TypeError("bug"), AttributeError("bug"), KeyError("bug"), IndexError("bug"),
                                   AssertionError("bug"), NotImplementedError("bug"), MemoryError(),
                                   RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_hf_generate_propagates_bugs_and_oom(tiny_target, monkeypatch, error):
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(tiny_target, "_generate_batch", boom)
    with pytest.raises(type(error)):
        tiny_target.generate([[{"role": "user", "content": "hi"}]], on_error="none")


def test_hf_generate_propagates_torch_oom(tiny_target, monkeypatch):
    import torch

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("no memory")

    monkeypatch.setattr(tiny_target, "_generate_batch", boom)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        tiny_target.generate([[{"role": "user", "content": "hi"}]], on_error="none")


@pytest.mark.parametrize("error", [RuntimeError("bad image"), ValueError("image has the wrong shape"),
                                   VLMGuardError("bad input")])
def test_hf_generate_counts_data_errors_as_failed(tiny_target, monkeypatch, error):
    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(tiny_target, "_generate_batch", boom)
    before = tiny_target.stats["failed"]
    chats = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "there"}]]
    assert tiny_target.generate(chats, on_error="none") == [None, None]
    assert tiny_target.stats["failed"] == before + 2
    with pytest.raises(VLMGuardError, match="generation failed"):
        tiny_target.generate(chats, on_error="raise")
