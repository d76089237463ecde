"""The training loop on HF Accelerate: one optimizer step per supervision step, with a persistent ACT carry.

docs/reference-code.md sections 2, 4-6. Per optimizer step: each process takes its slice of the global batch (split into
``accumulation`` micro-batches, each with its own carry), runs one supervision step per micro-batch, backpropagates
``loss / global_batch_size``, all-reduces the dense gradients once, steps the sign-SGD puzzle-embedding optimizer and
the dense optimizer with the warm-up schedule, and updates the EMA. Evaluation runs on the EMA weights every
``eval.every`` epochs and at the end. Checkpoints are atomic (trm/checkpoint.py) and hold everything needed to
continue exactly: weights, EMA, optimizers, RNG, loader position, the carry. The Trainer builds nothing: it receives
the run's parts (trm/build.py ``build_run``) and the command's Accelerator (trm/distributed.py).

Data parallelism is one fused all-reduce of the dense gradients per optimizer step, as the reference does, rather
than DDP's wrapper: the puzzle-embedding buffers are never broadcast, torch.compile sees the plain module, and
gradient accumulation needs no ``no_sync``. docs/training.md explains the choices.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from trm import __version__, distributed
from trm.build import RunParts
from trm.checkpoint import (capture_process_state, find_checkpoint, load_weights, prune_checkpoints, read_checkpoint,
                            reseed_process, restore_process_state, write_checkpoint)
from trm.config import dump_recipe
from trm.curriculum import depth_at
from trm.engine import model_summary
from trm.errors import UserError
from trm.eval_guard import evaluation_guard, guard_evaluators, part
from trm.evaluate import build_evaluators, describe_stop_rule, eval_settings, evaluate, format_table
from trm.logs import MetricsLog, plot_curves, read_metrics
from trm.losses import act_loss, token_loss_name
from trm.optim import lr_at
from trm.plugins import get_host
from trm.progress import progress_bar
from trm.recipe import Recipe
from trm.threads import thread_source

if TYPE_CHECKING:
    from accelerate import Accelerator


class Trainer:
    """Runs one training run from its built parts (trm/build.py ``build_run``): loop, evaluate, checkpoint."""

    def __init__(self, recipe: Recipe, run_dir: Path, parts: RunParts, accelerator: Accelerator, *,
                 show_progress: bool = True, started: float | None = None):
        self.recipe, self.run_dir, self.show_progress = recipe, Path(run_dir), show_progress
        self.accelerator = accelerator
        # records' wall_s: seconds since ``started`` (the command's start, time.perf_counter()), else since now
        self.clock_start = time.perf_counter() if started is None else started
        self.is_main = accelerator.is_main_process
        self.store, self.dims, self.plan, self.dtype = parts.store, parts.dims, parts.plan, parts.dtype
        self.model, self.step_model, self.loader, self.ema = parts.model, parts.step_model, parts.loader, parts.ema
        self.dense_opt, self.sparse_opt = parts.dense_opt, parts.sparse_opt
        self.train_split = self.loader.split
        self.halting = self.model.halting
        self.loss_type = token_loss_name(recipe.model.loss, self.model.fast_path)
        # The dense optimizer holds every trainable parameter; the puzzle table is a buffer that sign-SGD updates.
        self.dense_params = [p for group in self.dense_opt.param_groups for p in group["params"]]
        split = self.train_split
        self.epoch_steps = math.floor(recipe.train.epochs * split.num_groups * split.mean_puzzle_examples
                                      / self.plan.global_batch)  # what train.epochs alone asks for
        self.total_steps = self.epoch_steps
        if recipe.train.max_steps is not None:
            self.total_steps = min(self.total_steps, recipe.train.max_steps)
        self.step = 0
        self.carries: list[Any] = [None] * self.plan.accumulation
        every = recipe.eval.every
        self.next_eval_epoch = float(every) if every else math.inf
        self.last_eval: dict[str, float] = {}
        self.eval_step: int | None = None  # the step whose evaluation follows its checkpoint (state["eval_step"])
        self.pending_eval = False  # resumed from a checkpoint whose evaluation did not complete
        self.log = MetricsLog(self.run_dir / "metrics.jsonl", enabled=self.is_main)
        self.evaluators = None
        self.resumed = False
        self.first_step = 0  # the step this session started from (a resumed run's checkpoint)
        self.stop_signal: int | None = None  # SIGINT/SIGTERM received by this process (trm/train.py _catch_stop)
        self.stop_agreed = False  # every process knows of a stop request (at once with one process)

    # ---- set-up report --------------------------------------------------------------------------------------
    def describe(self) -> list[str]:
        plan = self.plan
        lines = [
            f"run directory: {self.run_dir}",
            f"device: {self.accelerator.device} x {plan.processes} process(es), compute dtype {str(self.dtype).split('.')[-1]}"
            + (f", {torch.get_num_threads()} CPU thread(s) ({thread_source()})" if self.accelerator.device.type == "cpu" else ""),
            f"global batch: {plan.global_batch} = {plan.processes} process(es) x {plan.per_device} per device "
            f"x {plan.accumulation} accumulation step(s)",
            f"optimizer steps: {self._steps_line()}",
            f"evaluation: {self._eval_line()}",
        ]
        return lines + model_summary(self.model)

    def _steps_line(self) -> str:
        # An "epoch" is the reference's: the loader hands out one version of every group. Each step fetches a
        # whole global batch but only the rows whose sample halted take theirs, so puzzles *trained* per epoch
        # are fewer (docs/training.md, "Epochs"); the plan says so instead of implying every group is trained.
        epochs = (f"{self.recipe.train.epochs} epochs of {self.train_split.num_groups} groups; an epoch = every group "
                  "fetched once, of which only rows replacing halted samples are trained")
        if self.total_steps < self.epoch_steps:
            return f"{self.total_steps} (capped by train.max_steps; {epochs}: would be {self.epoch_steps})"
        return f"{self.total_steps} ({epochs})"

    def _eval_line(self) -> str:
        recipe = self.recipe
        if not self.store.has_split(recipe.eval.split):
            return f"none: the store has no '{recipe.eval.split}' split"
        size = self.store.split(recipe.eval.split).num_examples
        subset = f"a fixed subset of {min(recipe.eval.limit, size)} of {size}" if recipe.eval.limit else f"all {size}"
        when = f"every {recipe.eval.every} epochs and at the end" if recipe.eval.every else "at the end"
        # the halting plan line shows training's rule; this one how evaluations stop
        halting, cap, threshold = eval_settings(recipe.eval, None, None, None)
        how = describe_stop_rule(halting, cap or self.halting.max_steps, threshold)
        return f"{when}, on {subset} '{recipe.eval.split}' examples; {how}"

    # ---- one optimizer step ---------------------------------------------------------------------------------
    def _micro_batches(self, batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        device, size = self.accelerator.device, self.plan.per_device
        moved = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        return [{key: value[i * size:(i + 1) * size] for key, value in moved.items()}
                for i in range(self.plan.accumulation)]

    def _set_lr(self) -> float:
        optim = self.recipe.optim
        lr = 0.0

        def scheduled(rate: float) -> float:
            return lr_at(self.step + 1, rate, warmup_steps=optim.warmup_steps, total_steps=self.total_steps,
                         schedule=optim.schedule, min_ratio=optim.lr_min_ratio)

        for optimizer, base in ((self.dense_opt, optim.lr), (self.sparse_opt, optim.puzzle_emb_lr)):
            if optimizer is None:
                continue
            value = scheduled(base)
            for group in optimizer.param_groups:
                # A group with its own base rate (trm/optim.py's Muon groups) follows the same schedule scaled to
                # that rate; lr_at is linear in its base, so the ratio of the two kinds stays fixed all run.
                group["lr"] = scheduled(group["base_lr"]) if "base_lr" in group else value
            if optimizer is self.dense_opt:
                lr = value
        return lr

    def _set_depth(self) -> None:
        """The curriculum's (T, n) for this step (trm/curriculum.py); the phase changes are printed."""
        phases = self.recipe.train.depth_curriculum
        if not phases:
            return
        depth = depth_at(self.step, self.total_steps, phases)
        if depth != self.model.train_depth:
            self.model.train_depth = depth
            if self.is_main:
                cfg = self.recipe.model
                T, n = depth if depth is not None else (cfg.h_cycles, cfg.l_cycles)
                print(f"depth curriculum: from step {self.step}, T={T}, n={n}"
                      + ("" if depth is not None else " (the model's own)"), file=sys.stderr, flush=True)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        totals: dict[str, torch.Tensor] = {}
        self._set_depth()
        for index, micro in enumerate(self._micro_batches(batch)):
            if self.carries[index] is None:
                self.carries[index] = self.model.initial_carry(micro)
            self.carries[index], outputs = self.step_model(self.carries[index], micro)
            loss, metrics = act_loss(outputs, self.halting, loss_type=self.loss_type,
                                     halt_loss_weight=self.recipe.model.halt_loss_weight)
            (loss / self.plan.global_batch).backward()
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0) + value.detach().float()
        distributed.all_reduce_sum_([p.grad for p in self.dense_params if p.grad is not None])
        lr = self._set_lr()
        if self.sparse_opt is not None:
            self.sparse_opt.step()
            self.sparse_opt.zero_grad(set_to_none=True)
        self.dense_opt.step()
        self.dense_opt.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        totals["lr"] = torch.tensor(lr)
        return totals

    @property
    def has_nothing_left(self) -> bool:
        """A resumed run already at its last step, its final evaluation done: :meth:`run` only says so."""
        return self.resumed and self.step >= self.total_steps and not self.pending_eval

    # ---- the loop -------------------------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        acc = self.accelerator
        if self.resumed and self.step >= self.total_steps:
            if self.has_nothing_left:
                if self.is_main:
                    print(f"{self.run_dir}: the run is complete ({self.step}/{self.total_steps} optimizer steps); "
                          "raise train.epochs or train.max_steps to continue it, or evaluate it with `trm eval`",
                          flush=True)
                return {}
            if self.is_main:
                print(f"{self.run_dir}: training is complete ({self.step}/{self.total_steps} optimizer steps) but its "
                      "final evaluation did not finish; running it again", flush=True)
            return self._finish(time.perf_counter(), save=False)
        started = time.perf_counter()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for line in self.describe():
                print(line, flush=True)
            get_host().pm.hook.trm_before_run(recipe=self.recipe, run_dir=self.run_dir)
        if acc.log_with:
            acc.init_trackers("trm", config={"recipe": dump_recipe(self.recipe)})
        bar = progress_bar(total=self.total_steps, initial=self.step, desc="train",
                           disable=not (self.show_progress and self.is_main))
        window: dict[str, torch.Tensor] = {}
        window_start, window_steps = time.perf_counter(), 0
        batches = iter(self.loader)
        checkpoint_every = self.recipe.train.checkpoint_every
        previous_handlers = self._catch_stop()
        if self.pending_eval:  # the last run stopped in this step's evaluation: the checkpoint came first
            if self.is_main:
                bar.write(f"the evaluation at step {self.step} did not finish last time; running it again")
            self._evaluate_guarded(bar)
        while self.step < self.total_steps:
            metrics = self.train_step(next(batches))
            for key, value in metrics.items():
                window[key] = window.get(key, 0) + value
            window_steps += 1
            bar.update(1)
            if self.step % self.recipe.train.log_every == 0 or self.step == self.total_steps:
                record = self._log_train(window, window_steps, time.perf_counter() - window_start)
                bar.set_postfix(epoch=f"{self.loader.epoch:.1f}", loss=f"{record['lm_loss']:.3f}",
                                exact=f"{record['exact_accuracy']:.3f}", sps=f"{record['samples_per_s']:.0f}")
                window, window_start, window_steps = {}, time.perf_counter(), 0
            due = False
            if self.loader.epoch >= self.next_eval_epoch and self.step < self.total_steps:
                while self.next_eval_epoch <= self.loader.epoch:
                    self.next_eval_epoch += float(self.recipe.eval.every)
                due = True
            # The checkpoint comes before the evaluation: nothing an evaluation does can lose the training.
            if due or (checkpoint_every and self.step % checkpoint_every == 0):
                self.save(evaluation_follows=due)
            if due:
                self._evaluate_guarded(bar)
            if self.stop_agreed or (self.stop_signal is not None and acc.num_processes == 1):
                self._stop_gracefully(bar)
        bar.close()
        for signum, previous in previous_handlers.items():
            signal.signal(signum, previous)
        # The final evaluation counts as the one due now: a resume with more epochs must not repeat it at once.
        while self.next_eval_epoch <= self.loader.epoch:
            self.next_eval_epoch += float(self.recipe.eval.every)
        return self._finish(started, save=True)

    def _finish(self, started: float, *, save: bool) -> dict[str, float]:
        """The final checkpoint, then the final evaluation, the ``trm_after_run`` hook and the summary."""
        acc = self.accelerator
        if save:
            self.save(evaluation_follows=True)
        self._evaluate_guarded(None, final=True)
        if self.is_main:
            after = (f"training and its final evaluation are complete and kept in {self.run_dir}; "
                     f"evaluate it again with `trm eval {self.run_dir}`")
            with evaluation_guard("the end of the run", after):
                with part("hook trm_after_run"):
                    get_host().pm.hook.trm_after_run(recipe=self.recipe, run_dir=self.run_dir, metrics=self.last_eval)
            self._print_summary(time.perf_counter() - started)
        if acc.log_with:
            acc.end_training()
        return self.last_eval

    def _catch_stop(self) -> dict[int, Any]:
        """SIGINT (Ctrl-C) and SIGTERM (schedulers, preemption) finish the current step, write a checkpoint and stop.

        With several processes the request travels with the metrics all-reduce of the next log step, so that every
        process stops after the same step (a checkpoint is collective); that costs no extra synchronisation but may
        take up to ``train.log_every`` steps. The same signal a second time stops at once; a different one (torchrun
        answers Ctrl-C by sending SIGTERM to its workers) does not escalate.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal == signum:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                raise SystemExit(128 + signum)
            if self.stop_signal is None and self.is_main:
                when = "this step" if self.accelerator.num_processes == 1 else "the next log step"
                print(f"\n{signal.Signals(signum).name}: finishing {when} and writing a checkpoint "
                      "(the same signal again stops at once)", file=sys.stderr, flush=True)
            self.stop_signal = self.stop_signal or signum

        return {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}

    def _stop_gracefully(self, bar: Any) -> None:
        bar.close()
        self.save()
        if self.is_main:
            print(f"stopped at step {self.step} of {self.total_steps}, checkpoint written; continue with "
                  f"`trm run --resume {self.run_dir}`", file=sys.stderr, flush=True)
        raise SystemExit(128 + (self.stop_signal or signal.SIGTERM))

    def _print_summary(self, seconds: float) -> None:
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        # A resumed run says how much of it this session did: the time below is this session's only
        this_session = (f" ({self.step - self.first_step} in this session, resumed at step {self.first_step})"
                        if self.first_step else "")
        lines = [f"run complete: {self.step} optimizer steps{this_session} in {hours}:{minutes:02d}:{secs:02d}"
                 if not self.pending_eval else f"run complete: {self.step} optimizer steps (final evaluation run again)",
                 f"  checkpoint: {find_checkpoint(self.run_dir)}",
                 f"  metrics:    {self.run_dir / 'metrics.jsonl'}"]
        curves = self.run_dir / "curves.png"
        lines.append(f"  curves:     {curves}" if curves.exists()
                     else f"  curves:     not drawn: {_plot_hint(bool(self.last_eval))}")
        lines.append(f"  evaluate again: trm eval {self.run_dir} [--max-steps N] [--split S]")
        print("\n".join(lines), flush=True)

    def _log_train(self, window: dict[str, torch.Tensor], steps: int, seconds: float) -> dict[str, float]:
        window = {**window, "stop": torch.tensor(float(self.stop_signal is not None))}
        keys = sorted(window)
        stacked = torch.stack([torch.as_tensor(window[k], dtype=torch.float32, device=self.accelerator.device) for k in keys])
        lr = float(window["lr"]) / steps
        stacked = self.accelerator.reduce(stacked, reduction="sum") if self.accelerator.num_processes > 1 else stacked
        summed = dict(zip(keys, stacked.tolist()))
        count = max(summed.get("count", 0.0), 1.0)
        record: dict[str, Any] = {"kind": "train", "step": self.step, "epoch": round(self.loader.epoch, 4)}
        for key, value in summed.items():
            if key in ("lr", "count", "stop"):
                continue
            record[key] = value / (steps * self.plan.global_batch) if key.endswith("loss") else value / count
        self.stop_agreed = summed["stop"] > 0
        record["halted"] = summed.get("count", 0.0) / steps
        record["lr"] = lr
        record["samples_per_s"] = steps * self.plan.global_batch / max(seconds, 1e-9)
        record["wall_s"] = round(time.perf_counter() - self.clock_start, 1)
        self.log.write(record)
        if self.accelerator.log_with:
            self.accelerator.log({f"train/{k}": v for k, v in record.items() if isinstance(v, float)}, step=self.step)
        return record

    def _evaluate_guarded(self, bar: Any, *, final: bool = False) -> None:
        """:meth:`_evaluate`, with any failure ending the run in one line that says the checkpoint is kept."""
        then = (f"`trm run --resume {self.run_dir}` runs it again (or evaluate with `trm eval {self.run_dir}`)" if final
                else f"`trm run --resume {self.run_dir}` runs it again and continues training")
        after = f"the checkpoint of step {self.step} is kept: fix the cause, then {then}"
        device = self.accelerator.device
        # The evaluation leaves the training RNG streams as they were: a resume from this step's checkpoint (written
        # before the evaluation) then continues exactly like the uninterrupted run, whether it evaluates again or not.
        rng = torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])
        try:
            with rng, evaluation_guard(f"evaluation at step {self.step}", after):
                self._evaluate(bar, final=final)
        except BaseException:
            if bar is not None:
                bar.close()
            raise
        self.pending_eval = False if not final else self.pending_eval
        self._prune()

    def _evaluate(self, bar: Any, *, final: bool = False) -> None:
        recipe, acc = self.recipe, self.accelerator
        limit = None if final and recipe.eval.final_whole_split else recipe.eval.limit
        if not self.store.has_split(recipe.eval.split):
            return
        if self.evaluators is None:  # built once per run: ARC votes accumulate across rounds
            with part("building the evaluators"):
                self.evaluators = guard_evaluators(build_evaluators(recipe, self.store, self.run_dir / "eval"))
        context = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
        with context:
            metrics = evaluate(self.step_model, self.store.split(recipe.eval.split), self.evaluators, accelerator=acc,
                               global_batch_size=recipe.eval.batch_size or self.plan.global_batch,
                               max_steps=recipe.eval.max_steps, halting=recipe.eval.halting,
                               halt_threshold=recipe.eval.halt_threshold, limit=limit, seed=recipe.train.seed,
                               ignore_label_id=self.store.info.ignore_label_id, pad_id=self.store.info.pad_id,
                               show_progress=self.show_progress)
        self.last_eval = metrics
        if self.is_main:
            directory = self.run_dir / "eval" / f"step_{self.step}"
            for _, evaluator in self.evaluators:
                evaluator.write(directory)
            message = f"evaluation at step {self.step} (epoch {self.loader.epoch:.1f}, EMA weights):\n{format_table(metrics)}"
            (bar.write if bar is not None else print)(message)
            with part("hook trm_after_eval"):
                get_host().pm.hook.trm_after_eval(recipe=recipe, run_dir=self.run_dir, step=self.step, metrics=metrics)
        if acc.log_with:
            with part("the experiment tracker"):
                acc.log({f"eval/{k}": v for k, v in metrics.items()}, step=self.step)
        if self.is_main:  # the record last: its presence says this step's evaluation completed (see resume)
            self.log.write({"kind": "eval", "step": self.step, "epoch": round(self.loader.epoch, 4), **metrics,
                            "wall_s": round(time.perf_counter() - self.clock_start, 1)})
            try:
                plot_curves(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png")
            except Exception as exc:  # noqa: BLE001 - a drawing problem is not worth a run
                print(f"note: curves.png not drawn ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)

    def _evaluated_steps(self) -> set[int]:
        path = self.run_dir / "metrics.jsonl"
        records = read_metrics(path) if path.exists() else []
        return {int(r["step"]) for r in records if r.get("kind") == "eval" and isinstance(r.get("step"), int)}

    def _prune(self) -> None:
        keep = self.recipe.train.keep_checkpoints
        if not self.is_main or keep is None:
            return
        path = self.run_dir / "metrics.jsonl"
        best = best_evaluated_step(read_metrics(path) if path.exists() else [])
        prune_checkpoints(self.run_dir / "checkpoints", keep, {best} if best is not None else set())

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def save(self, *, evaluation_follows: bool = False) -> None:
        """Write a checkpoint of this step (collective); ``evaluation_follows``: this step's evaluation comes next."""
        acc = self.accelerator
        if evaluation_follows and self.store.has_split(self.recipe.eval.split):
            self.eval_step = self.step
        acc.wait_for_everyone()
        processes = distributed.gather_to_main(capture_process_state(self.carries))
        if self.is_main:
            optim = {"dense": self.dense_opt.state_dict(),
                     "sparse": self.sparse_opt.state_dict() if self.sparse_opt is not None else None}
            state = {
                "step": self.step,
                "next_eval_epoch": self.next_eval_epoch if math.isfinite(self.next_eval_epoch) else None,
                "loader": self.loader.state_dict(),
                "process_states": processes,  # per rank: ACT carries and RNG states (trm/checkpoint.py)
                "fingerprint": self.store.info.fingerprint,
                "dims": attrs.asdict(self.dims),
                "trm_version": __version__,
                "processes": acc.num_processes,
                "eval_step": self.eval_step,
            }
            write_checkpoint(self.run_dir, self.step, model_state=self.model.state_dict(),
                             ema_state=self.ema.state_dict() if self.ema is not None else None,
                             optim_state=optim, state=state, identifiers=_identifier_names(self.store))
            self._prune()
        acc.wait_for_everyone()

    def resume(self) -> None:
        """Continue from the run directory's latest checkpoint: weights, EMA, optimizers, loader, RNG, carries."""
        self.resumed = True
        path = find_checkpoint(self.run_dir)
        parts = read_checkpoint(path, map_location=self.accelerator.device)
        state = parts["state"]
        if state["fingerprint"] != self.store.info.fingerprint:
            raise UserError(
                f"{path}: written for a dataset with fingerprint {state['fingerprint']}, but {self.recipe.data.store} "
                f"has {self.store.info.fingerprint}; resume with the same store"
            )
        load_weights(self.model, parts["model"], path, "a resumed run cannot change model.* or backbone.* settings")
        if self.ema is not None and parts["ema"] is not None:
            self.ema.load_state_dict(parts["ema"])
        try:
            self.dense_opt.load_state_dict(parts["optim"]["dense"])
        except (ValueError, KeyError):  # torch's mismatched-groups error, or a group lacking a Muon key
            raise UserError(f"{path}: the checkpoint's optimizer state does not fit optim.name "
                            f"{self.recipe.optim.name}; a resumed run cannot change optim.name") from None
        if self.sparse_opt is not None and parts["optim"]["sparse"] is not None:
            self.sparse_opt.load_state_dict(parts["optim"]["sparse"])
        self.loader.load_state_dict(state["loader"])
        self.step = state["step"]
        self.first_step = self.step
        self.eval_step = state.get("eval_step")
        # Its evaluation record is written last, so a checkpoint whose evaluation was due has none if it failed.
        self.pending_eval = self.eval_step == self.step and self.step not in self._evaluated_steps()
        self.next_eval_epoch = state["next_eval_epoch"] if state["next_eval_epoch"] is not None else math.inf
        acc = self.accelerator
        saved = state.get("process_states") or []
        if len(saved) == acc.num_processes:
            carries = restore_process_state(saved[acc.process_index], acc.device)
            if len(carries) == len(self.carries):
                self.carries = carries
        else:  # another process count: each rank's slice of the batch differs, so the carries cannot carry over
            reseed_process(self.recipe.train.seed, acc.process_index, self.step)
        self.log.truncate_after(self.step)
        if self.is_main:
            print(f"resumed from {path} at step {self.step}", flush=True)
            if len(saved) != acc.num_processes:
                print(f"note: the checkpoint was written by {state.get('processes', 1)} process(es), this run has "
                      f"{acc.num_processes}: ACT carries restart and exploration streams are reseeded, so the run "
                      "continues correctly but not bit-for-bit as it would have", flush=True)


def _plot_hint(evaluated: bool) -> str:
    """Why curves.png is missing, and what to do: right whether or not matplotlib is a dependency of this install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (`pip install matplotlib` in this environment; then it is drawn at each evaluation)"
    if not evaluated:
        return "it is drawn at each evaluation, and none ran"
    return "matplotlib did not write it"


def best_evaluated_step(records: list[dict[str, Any]]) -> int | None:
    """The evaluated step with the highest headline metric: the first metric of the first evaluator (the first key
    of the eval records, e.g. exact_match/exact_accuracy or arc/pass@1); the latest of equal ones. None if none."""
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return None
    headline = next((key for key in evals[0] if key not in ("kind", "step", "epoch", "wall_s")), None)
    scored = [(r[headline], r["step"]) for r in evals
              if isinstance(r.get(headline), (int, float)) and math.isfinite(r[headline]) and isinstance(r.get("step"), int)]
    return max(scored)[1] if scored else None


def _identifier_names(store: Any) -> list[str] | None:
    names = getattr(store.info, "identifier_names", None)
    return list(names) if names is not None else None
