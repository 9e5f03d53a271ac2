from vlmguard.training import cli_entry

from .train import main

cli_entry(main, "vlmguard grpo")
