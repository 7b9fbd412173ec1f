"""Recipe: fine-tune an instruct LLM into a yes/no prompt-injection detector.

    python -m ft.train --config configs/tiny-cpu.yaml [--run-id ID] [--resume] [--data SNAPSHOT]

Features
- One ``TrainConfig`` (a dataclass, loaded from YAML) drives the CLI, the app
  and the tests; the resolved config is saved with the run and reproduces it.
- QLoRA on CUDA (4-bit NF4, double quantisation, bf16 compute, paged 8-bit
  AdamW, non-reentrant gradient checkpointing, LoRA on every linear layer);
  the same code runs LoRA in fp32 on CPU.
- Answer-only loss computed cheaply: the LM head projects only the positions
  whose next token is learned (the answer and ``<|im_end|>``), not every
  position times a 151k vocabulary.
- Length-grouped batches with dynamic padding.
- Predictions on a fixed validation sample at train start and each epoch end
  (files, wandb or trackio); ``eval.json`` with before/after test metrics.
- SIGTERM ends the run as "cancelled" within seconds wherever it is (a step,
  a prediction table, the test scoring: ``ft.cancel``), keeping a checkpoint of
  the last completed step; ``--resume`` continues from it.
- ``precision: auto`` trains in bf16 autocast only where bf16 is native
  (``ft.machine``); an explicit bf16 where it is emulated says its cost in the log. A completed run removes its
  checkpoints (only a resume reads them; the adapter is saved apart).

Trade-offs
- The validation sample is carved from train when the data has no validation
  split, so the run trains on slightly fewer rows than the split holds.
- Test metrics threshold P(injection) at the threshold chosen on the validation
  split (``threshold_rule``, recorded in eval.json; one more scoring pass over it); the answer text is a
  separate greedy generation (``test_answers: generate``) or the top next token
  of the scoring pass (``first_token``, free), reported as its parse rate.
- The base model's ("before") test scores are cached across runs
  (``ft.score_cache``): the first run on a base and test split pays for them.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from ft import cancel, collate, data, models
from ft.callbacks import PredictionLogger, RunFiles, StopOnSignal, wandb_test_charts
from ft.collate import LengthGroupedBatchSampler
from ft.config import ConfigError, TrainConfig, new_run_id, wandb_mode
from ft.detector import detector_for
from ft.machine import measured, precision_note, uses_bf16
from ft.metrics import evaluation_report, length_cut
from ft.models import decoder_and_head
from ft.run_dir import RunDir, write_json
from ft.score_cache import base_scores
from ft.threshold import ThresholdChoice, choose_threshold

log = logging.getLogger("ft.train")

# --- the loss --------------------------------------------------------------------------------


def answer_loss(model, inputs: dict, num_items_in_batch=None):
    """Causal-LM cross-entropy over the learned tokens only, projecting only their positions.

    The forward goes through ``model`` itself (so DDP and the adapter see it)
    with ``logits_to_keep=1``; the final hidden states at positions whose next
    token is learned go through the LM head. Equal to the model's own loss on
    the same batch, without its (batch x length x vocab) logits tensor.
    """
    import torch.nn.functional as F

    out = model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        logits_to_keep=1,
        output_hidden_states=True,
        use_cache=False,
    )
    targets = inputs["labels"][:, 1:]
    learned = targets != -100
    hidden = out.hidden_states[-1][:, :-1][learned]
    _, head = decoder_and_head(getattr(model, "module", model))
    logits = head(hidden).float()
    total = F.cross_entropy(logits, targets[learned], reduction="sum")
    return total / (num_items_in_batch if num_items_in_batch is not None else learned.sum())


def _trainer_class():
    import transformers
    from torch.utils.data import DataLoader

    class StudioTrainer(transformers.Trainer):
        """The Trainer with the answer-only loss and length-grouped batches."""

        def __init__(self, *args, studio_config: TrainConfig, **kwargs):
            super().__init__(*args, **kwargs)
            self.studio_config = studio_config

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self.studio_config.answer_only_logits:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = answer_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # num_items_in_batch counts every process's tokens: scale back as Trainer.compute_loss does
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return (loss, None) if return_outputs else loss

        def get_train_dataloader(self):
            if not self.studio_config.group_by_length:
                return super().get_train_dataloader()
            sampler = LengthGroupedBatchSampler(
                [len(r["input_ids"]) for r in self.train_dataset],
                self.args.per_device_train_batch_size,
                seed=self.args.seed,
            )
            loader = DataLoader(
                self.train_dataset,
                batch_sampler=sampler,
                collate_fn=self.data_collator,
                num_workers=self.args.dataloader_num_workers,
            )
            return self.accelerator.prepare(loader)

    return StudioTrainer


# --- the run ---------------------------------------------------------------------------------


@contextlib.contextmanager
def logging_to(run: RunDir) -> Iterator[None]:
    """For the block, log to stderr, and to log.txt unless stderr already goes there (a run started by the app).

    The root logger's handlers and level are put back after it, so a fold's run inside an audit hands the log
    back to the audit's file, and a caller that trains in-process keeps its own logging."""
    handlers = [logging.StreamHandler(sys.stderr)]
    try:
        same = run.log.exists() and os.path.samestat(os.fstat(2), os.stat(run.log))
    except OSError:
        same = False
    if not same:
        handlers.append(logging.FileHandler(run.log))
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    root.handlers = handlers
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.handlers = before
        root.setLevel(level)
        for handler in handlers:
            handler.close()


def _optimiser(config: TrainConfig, quantised: bool) -> str:
    if config.optim != "auto":
        return config.optim
    return "paged_adamw_8bit" if quantised else "adamw_torch"


def _training_arguments(config: TrainConfig, run: RunDir, quantised: bool):
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    extra = {"trackio_static_space_id": False, "project": config.project} if config.tracker == "trackio" else {}
    return transformers.TrainingArguments(
        output_dir=str(run.checkpoints),
        run_name=run.run_id,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        optim=_optimiser(config, quantised),
        bf16=uses_bf16(config.precision),
        use_cpu=not cuda,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        report_to=[] if config.tracker == "none" else [config.tracker],
        remove_unused_columns=False,
        seed=config.seed,
        data_seed=config.seed,
        disable_tqdm=True,
        gradient_checkpointing=False,
        ddp_find_unused_parameters=False,
        **extra,
    )


def _tracker_environment(config: TrainConfig) -> None:
    """wandb goes offline when no key or login is present: a run must never wait on a network it lacks."""
    if config.tracker == "wandb":
        os.environ.setdefault("WANDB_PROJECT", config.project)
        os.environ["WANDB_MODE"] = wandb_mode()


def _log_test_charts(config: TrainConfig, report) -> None:
    """The test split's ROC curves, confusion matrices and share flagged per source, to the wandb run the Trainer
    opened (still open: wandb finishes it when the process ends). Trackio gets none: it closed its run in its
    own on_train_end, before the test split was scored. A chart that fails is logged, never fails the run."""
    if config.tracker != "wandb" or not is_main_process():
        return
    import wandb

    if wandb.run is None:
        return
    try:
        wandb.log(wandb_test_charts(report))
    except Exception:  # the run's files and eval.json are written already; a tracker's failure is only logged
        log.exception("could not log the test charts to wandb")


def _wandb_location() -> str | None:
    import wandb

    if wandb.run is None:
        return None
    return wandb.run.url or wandb.run.dir


def spoken_answers(scored, test_answers: str) -> list[str]:
    """The answer text each row is judged by: the generated answer, or the scoring pass's top token."""
    return [s.answer if test_answers == "generate" else s.first_token for s in scored]


def score_before_after(detector, base_identity: str, texts: list[str], test_answers: str = "generate") -> dict:
    """{"before": scores, "after": scores} for ``texts``, with seconds spent and whether "before" was cached."""

    started = time.perf_counter()
    before, cached = base_scores(detector, base_identity, texts, answers=test_answers)
    before_seconds = time.perf_counter() - started
    started = time.perf_counter()
    after = detector.score(texts, adapter=True, answers=test_answers == "generate")
    return {"before": (before, before_seconds, cached), "after": (after, time.perf_counter() - started, False)}


def evaluate_before_after(
    detector, test, threshold: float, base_identity: str, test_answers: str = "generate", cut: float | None = None
) -> dict:
    """Test metrics for the base model (adapter off, cached) and the fine-tuned one (adapter on), per source,
    beside the length baseline at ``cut`` (ft/metrics.py)."""
    scored = score_before_after(detector, base_identity, test["text"].tolist(), test_answers)
    scores = {side: [s.p_injection for s in rows] for side, (rows, _, _) in scored.items()}
    answers = {side: spoken_answers(rows, test_answers) for side, (rows, _, _) in scored.items()}
    report = evaluation_report(test, scores, answers, threshold, cut)
    for side, (_, seconds, cached) in scored.items():
        report[side].update(seconds=round(seconds, 2), cached=cached, answers=test_answers)
    return report


def chosen_threshold(config: TrainConfig, detector, validation) -> ThresholdChoice:
    """The decision threshold, chosen on the validation split by ``config.threshold_rule`` (ft/threshold.py)."""
    chosen = choose_threshold(
        validation["label"],
        detector.probabilities(validation["text"].tolist()),
        config.threshold_rule,
        fixed=config.threshold,
        target_fpr=config.target_fpr,
    )
    log.info("threshold %.4g (%s: %s)", chosen.value, chosen.applied, chosen.note)
    return chosen


@contextlib.contextmanager
def running(run: RunDir, config: TrainConfig, logger: logging.Logger, **state) -> Iterator[None]:
    """Open the run's folder (log.txt, config.yaml, state "running" plus ``state``) for the block, logging to it;
    an exception in it marks the run "failed" with its first line, logs the traceback and propagates.
    Under ``accelerate launch`` only rank 0 touches the files."""
    if not is_main_process():
        yield
        return
    run.path.mkdir(parents=True, exist_ok=True)
    with logging_to(run):
        run.config.write_text(config.to_yaml())
        run.write_state(status="running", pid=os.getpid(), started=time.time(), error=None, ended=None, **state)
        try:
            yield
        except BaseException as exc:
            logger.error("%s failed:\n%s", run.run_id, traceback.format_exc())
            run.write_state(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0], ended=time.time())
            raise


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train(config: TrainConfig, run_id: str | None = None, resume: bool = False) -> RunDir:
    """Run ``config`` end to end into ``runs_dir/run_id``; returns the run's folder. ``resume`` continues a
    cancelled or failed run from its last checkpoint (ValueError for a completed one)."""
    config.validate()
    config = config.resolved()
    run = RunDir(Path(config.runs_dir) / (run_id or new_run_id(config)))
    if resume and run.read_state().get("status") == "completed":
        raise ValueError(f"run {run.run_id} is completed: there is nothing to resume")
    cancel.on_sigterm()
    with running(run, config, log):
        status = _train(config, run, resume)
        if is_main_process():
            if status == "completed":
                run.remove_checkpoints()
            run.write_state(status=status, ended=time.time())
    return run


def _log_precision(config: TrainConfig) -> None:
    """Say in the run's log what precision runs on this machine, and what an explicit bf16 costs here."""
    bf16 = uses_bf16(config.precision)
    log.info("precision %s: training in %s (%s)", config.precision, "bf16" if bf16 else "fp32", measured().describe())
    note = precision_note(config.precision)
    if note:
        log.warning(note)


def _save_last_step(trainer, run: RunDir) -> None:
    """After a cancel inside a step: a checkpoint of the last completed step (the step cut short changed no
    weight: they change only in the optimiser step), unless it is step 0 or saved already."""
    step = trainer.state.global_step
    if step == 0 or not trainer.is_world_process_zero():
        log.info("cancelled before the first step ended: nothing to save")
        return
    if not (run.checkpoints / f"checkpoint-{step}").is_dir():
        trainer._save_checkpoint(trainer.model, trial=None)
    run.write_state(step=step)
    log.info("cancelled during step %d; checkpoint of step %d saved", step + 1, step)


def _train(config: TrainConfig, run: RunDir, resume: bool) -> str:
    import transformers
    from datasets import Dataset

    stop = StopOnSignal()
    _log_precision(config)
    frames = data.load_training_data(config.data, **config.data_options())
    log.info("data %s: %s", config.data, {k: len(v) for k, v in frames.items()})
    tokenizer = models.load_tokenizer(config.tokenizer or models.default_tokenizer(config.model))
    started = time.perf_counter()
    rows = collate.encode_examples(
        tokenizer, frames["train"]["text"].tolist(), frames["train"]["label"].tolist(), config.max_length
    )
    log.info("tokenised %d training rows in %.1fs", len(rows), time.perf_counter() - started)

    _tracker_environment(config)
    transformers.set_seed(config.seed)  # the LoRA weights are drawn here, before the Trainer seeds anything
    model = models.load_for_training(
        config.model,
        tokenizer,
        quantisation=config.quantisation,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        modules_to_save=tuple(config.modules_to_save),
        gradient_checkpointing=config.gradient_checkpointing,
        lora_layers=config.lora_layers,
    )
    quantisation = models.resolve_quantisation(config.quantisation)
    quantised = quantisation != "none"
    trainable, total = model.get_nb_trainable_parameters()
    log.info("model %s (%s): %d trainable of %d parameters", config.model, quantisation, trainable, total)
    if is_main_process():
        run.write_state(base_quantisation=quantisation)  # what "auto" became on this machine (exports say it)
    cancel.watch(model)

    detector = detector_for(config, model, tokenizer)
    sample = frames["validation"].head(config.prediction_samples)
    predictions = PredictionLogger(
        detector, sample, run, config.tracker, config.predictions_every_steps, config.threshold
    )
    trainer = _trainer_class()(
        model=model,
        args=_training_arguments(config, run, quantised),
        train_dataset=Dataset.from_list(rows),
        data_collator=collate.RightPadCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[
            RunFiles(run, tracker_location=_wandb_location if config.tracker == "wandb" else None),
            predictions,
            stop,
        ],
        studio_config=config,
    )
    checkpoint = run.last_checkpoint() if resume else None
    if resume and checkpoint is None:
        log.info("no checkpoint to resume from: starting at step 0")
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except cancel.RunCancelled:
        _save_last_step(trainer, run)
        return "cancelled"
    if stop.requested:
        log.info("cancelled at step %d; checkpoint saved", trainer.state.global_step)
        return "cancelled"
    if not trainer.is_world_process_zero():
        return "completed"
    model.save_pretrained(run.adapter)
    tokenizer.save_pretrained(run.adapter)
    validation = frames["validation"]
    try:
        chosen = chosen_threshold(config, detector, validation)
        log.info("scoring the test split (%d rows) before and after", len(frames["test"]))
        report = evaluate_before_after(
            detector,
            frames["test"],
            chosen.value,
            models.base_identity(config.model, tokenizer, config.quantisation),
            config.test_answers,
            length_cut(validation["label"], validation["text"]),
        )
    except cancel.RunCancelled:
        log.info("cancelled while scoring the validation and test splits; the adapter and last checkpoint are kept")
        return "cancelled"
    report["threshold"] = chosen.to_dict()
    report["test_rows"] = len(frames["test"])
    write_json(run.eval, report)
    _log_test_charts(config, report)
    log.info(
        "test before: acc %.3f auc %s | after: acc %.3f auc %s",
        report["before"]["accuracy"],
        report["before"]["roc_auc"],
        report["after"]["accuracy"],
        report["after"]["roc_auc"],
    )
    return "completed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ft.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file of TrainConfig fields")
    parser.add_argument("--run-id", help="folder name under runs_dir (default: time + run name)")
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--data", help="train on this data instead of the config's (a snapshot folder, say)")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_yaml(args.config)
        if args.data:
            config = dataclasses.replace(config, data=args.data)
            config.validate()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run = train(config, args.run_id, args.resume)
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    print(run.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
