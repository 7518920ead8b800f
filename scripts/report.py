"""Tables like the paper's from evaluation runs: `python scripts/report.py multirun/evaluate/<time> [--out DIR]`."""

import argparse

from draggan.apps.commands import one_line_main
from eval.report import make_report


@one_line_main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", help="a folder holding scripts/evaluate.py runs (a Hydra sweep folder, say)")
    parser.add_argument("--out", default=None, help="where report.md and the plots go (default: the folder itself)")
    args = parser.parse_args()
    report = make_report(args.root, args.out)
    print(report["markdown"])
    print(f"report: {report['runs']} runs; report.md and {len(report['plots'])} plot(s) in {args.out or args.root}")


if __name__ == "__main__":
    main()
