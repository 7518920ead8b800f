"""Drag-quality checks: `python scripts/drag_checks.py check=mask|mouth [generator=...] [drag.<setting>=...]`.

Prints the figures as one JSON object on the last line (see eval/drag_checks.py)."""

import json

from draggan.apps.command_line import command
from draggan.apps.commands import explains_drag
from eval.configs import register_configs
from eval.drag_checks import run_drag_checks

register_configs()


@command("drag_checks")
@explains_drag
def main(cfg) -> None:
    print(json.dumps(run_drag_checks(cfg)))


if __name__ == "__main__":
    main()
