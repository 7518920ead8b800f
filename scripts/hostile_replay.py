"""Replay the hostile inputs of issue 26 and print the table: `python scripts/hostile_replay.py [rows...] [--json out]`.

Each row runs in a child process (or against a live editor on 127.0.0.1) with its peak memory measured; a row
holds when it is refused in one line, grows memory by less than 300 MB, finishes in time and, for the editor,
the server answers a normal request afterwards (see tests/helpers/hostile_replay.py). Exit status 1 if a row
of this project's own fixes fails.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the hostile inputs are the tests' own

from tests.helpers.hostile_replay import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
