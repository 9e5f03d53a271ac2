import sys

from vlmguard.errors import VLMGuardError

from .train import main

try:
    main()
except VLMGuardError as e:
    print(f"vlmguard grpo: error: {e}", file=sys.stderr)
    sys.exit(1)
