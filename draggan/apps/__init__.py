"""Applications built on the library, kept apart from it: the library (`draggan.*` outside this package) never
imports them.

- `editor/`: the web editor (a page, a JSON API, one editing timeline per browser tab);
- `training/`: the StyleGAN2 trainer (non-saturating loss, lazy R1, EMA, resumable in chunks);
- `toyfaces/`: the procedural cartoon-face domain (renderer, landmark detector) behind the embedded models;
- `benchmark.py` and `reference.py`: the drag-step benchmark and the full-resolution reference it compares with;
- `commands.py`: what the download and export commands do, and the one-line error handling of every script;
- `configs.py`: the schemas of those commands.
"""
