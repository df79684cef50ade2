"""The math-verify worker: `python -m selfcorrect._verify_worker`, started by `selfcorrect.rewards`.

Reads one JSON request per line on stdin (`{"op": "verify" | "classify" | "warmup", "args": [...]}`) and writes one JSON
reply per line on stdout. math-verify runs here with its signal timeouts off; the parent bounds the time and kills this
process if an answer takes too long.
"""

from __future__ import annotations

import json
import sys

from selfcorrect.rewards import _classify_worker, _verify_worker, _warmup_worker

OPS = {"verify": _verify_worker, "classify": _classify_worker, "warmup": _warmup_worker}


def main() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
            reply = {"ok": True, "result": OPS[request["op"]](*request["args"])}
        except Exception as exc:  # report to the parent and keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
