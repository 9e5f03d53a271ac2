"""Safety evaluation: official benchmarks × target VLMs × defences, judged and reported (``vlmguard eval``)."""
from .config import BenchmarkEntry, DefenceEntry, EvalConfig
from .defences import DEFENCES, Defence, Response
from .protocol import Protocol

__all__ = ["BenchmarkEntry", "DefenceEntry", "EvalConfig", "DEFENCES", "Defence", "Response", "Protocol",
           "run_eval"]


def run_eval(config: EvalConfig, progress: bool = True, rejudge: bool = False) -> dict:
    """Run (or resume) an evaluation and write its report; returns the report. Records whose judge call failed
    are judged again; ``rejudge`` judges every stored record again."""
    from .run import run_eval as _run

    return _run(config, progress, rejudge)
