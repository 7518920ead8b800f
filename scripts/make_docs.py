"""Write the docs' figures from their results files: `python scripts/make_docs.py [--check]`.

Rewrites every `<!-- results: NAME -->` region of README.md, docs/evaluation.md and docs/benchmarks.md from
`docs/results/*.json` (eval/doc_tables.py); `--check` changes nothing and exits 1 when a region is out of date.
"""

import argparse
import sys

from draggan.apps.commands import one_line_main
from eval.doc_tables import stale_docs, write_docs


@one_line_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say which docs differ from their results")
    args = parser.parse_args()
    if args.check:
        stale = stale_docs()
        if stale:
            sys.exit(f"make_docs: out of date with docs/results: {', '.join(stale)} (run scripts/make_docs.py)")
        print("make_docs: every generated region equals its results")
        return
    changed = write_docs()
    print(f"make_docs: rewrote {', '.join(changed)}" if changed else "make_docs: nothing to change")


if __name__ == "__main__":
    main()
