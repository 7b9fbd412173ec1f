"""Import datasets into a data directory's label store and freeze a mixed snapshot, from the command line.

    python -m curation.freeze --data-dir studio_data --import ../shared/data/safe-guard \\
        --import ../shared/data/train-pool --mix configs/mixes/pool.yaml [--weights "xquad=0,clinc-oos=0"]

What the Curate tab's Import and Snapshots do, for a script or a recipe (``configs/smollm2-cpu-mix.yaml``):
each ``--import`` is read as the app reads it (a folder of split files, a folder of sources, one file or a Hub id)
and added to the store (texts already stored are skipped, so running it again adds nothing); then one snapshot
is frozen with the mix options of ``--mix`` (a YAML mapping of ``curation.mix.MixOptions`` fields), weights in
``--weights`` overriding the file's. The snapshot's folder is the one line printed on stdout, so a shell can
hand it to ``python -m ft.train --data``. A file that cannot be used, or a mix naming a source the store does
not hold, ends the command with one line on stderr and exit code 2, and writes no snapshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from curation import sources
from curation.mix import MixOptions, parse_weights
from curation.store import LabelStore

ACTOR = "curation.freeze"


def mix_options(path: Path | None, weights: str = "") -> MixOptions:
    """The options in the YAML file at ``path`` (none: the defaults), with ``weights`` ("name=w, ...") on top."""
    values = yaml.safe_load(path.read_text()) if path else {}
    if values is not None and not isinstance(values, dict):
        raise ValueError(f"{path}: a mix is a mapping of MixOptions fields")
    values = dict(values or {})
    values["weights"] = {**dict(values.get("weights") or {}), **parse_weights(weights)}
    return MixOptions.from_dict(values)


def freeze(data_dir: Path, imports: list[str], options: MixOptions) -> Path:
    """Import every reference into the store of ``data_dir``, then freeze one snapshot; its folder."""
    store = LabelStore(data_dir)
    try:
        for ref in imports:
            result = store.import_examples(sources.load(ref), actor=ACTOR)
            print(f"{ref}: {result.added:,} added, {result.already_present:,} already stored", file=sys.stderr)
        snapshot = store.create_snapshot(ACTOR, options)
    finally:
        store.close()
    splits = ", ".join(f"{name} {split['rows']:,}" for name, split in snapshot.manifest["splits"].items())
    print(f"snapshot {snapshot.id} ({options.describe()}): {splits}", file=sys.stderr)
    return snapshot.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.freeze", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the app's data directory (its label store)")
    parser.add_argument("--import", dest="imports", action="append", default=[], help="a dataset to add (repeatable)")
    parser.add_argument("--mix", type=Path, help="YAML file of mix options (curation/mix.py MixOptions)")
    parser.add_argument("--weights", default="", help='weights over the file\'s, "source=weight, ..."')
    args = parser.parse_args(argv)
    try:
        options = mix_options(args.mix, args.weights)
        folder = freeze(args.data_dir, args.imports, options)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # SourceError is a ValueError
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    print(folder.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
