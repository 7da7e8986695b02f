"""Study A's dark-trait reduction: DPO preference pairs from BFI items, and LoRA training with TRL.

Pairs: every Agreeableness and Neuroticism item of the BFI under every option order of the design,
asked exactly as the measurement asks it. *Chosen* answers with the option that raises
Agreeableness (or lowers Neuroticism) most, followed by a short reason; *rejected* answers with the
opposite extreme and the opposite reason. SD-3 items never enter training, so SD-3 measured after
training is a held-out effect (study A's design; Li et al. 2024 built 4,318 such pairs from sampled
answers, we build them from the item keys).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psyprobe.errors import UserError
from psyprobe.inputs import json_lines
from psyprobe.instruments import load_instrument
from psyprobe.libraries import route_library_output
from psyprobe.prompting import TEMPLATES, build_prompts
from psyprobe.runs.directory import claim, hold_record, write_json, write_text

if TYPE_CHECKING:
    from psyprobe.engine.measure import Watcher

# dimension → (direction that is chosen: +1 raise / −1 lower, chosen reason, rejected reason)
TARGETS: dict[str, tuple[int, str, str]] = {
    "Agreeableness": (
        1,
        "I care about other people and try to treat everyone with kindness and respect.",
        "I look out for myself first and do not much care how others feel.",
    ),
    "Neuroticism": (
        -1,
        "I usually stay calm, and stress does not throw me off balance.",
        "I get worried and upset easily, and my mood swings a lot.",
    ),
}


def dpo_pairs(orders: str = "latin", seed: int = 0) -> list[dict[str, Any]]:
    bfi = load_instrument("bfi")
    dims = {d.id: d for d in bfi.dimensions()}
    questions = [q for q in bfi.questions() if q.dimension in TARGETS]
    template = TEMPLATES["study-a"]
    pairs = []
    for ip in build_prompts("bfi", questions, orders, template, seed):
        q = ip.question
        direction, good_reason, bad_reason = TARGETS[q.dimension]
        keyed = [
            dims[q.dimension].keyed(q.options[i].value, q.reverse) * direction for i in ip.order
        ]
        best, worst = keyed.index(max(keyed)), keyed.index(min(keyed))

        def answer(position: int, reason: str, ip: Any = ip) -> list[dict[str, str]]:
            option = ip.question.options[ip.order[position]].text
            return [{"role": "assistant", "content": f"{position + 1}. {option}. {reason}"}]

        pairs.append(
            {
                "prompt": [
                    {"role": "system", "content": ip.prompt.system or ""},
                    {"role": "user", "content": ip.prompt.user},
                ],
                "chosen": answer(best, good_reason),
                "rejected": answer(worst, bad_reason),
                "item": f"bfi/{q.item_id}",
                "dimension": q.dimension,
                "order": list(ip.order),
            }
        )
    return pairs


def write_pairs(pairs: list[dict[str, Any]], path: Path) -> str:
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs)
    write_text(path, text)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_pairs(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"--pairs: no such file {path}")
    pairs = []
    for n, row in json_lines(path):
        if not isinstance(row, dict):
            raise UserError(f"{path}:{n}: not a pair (a JSON object with prompt, chosen, rejected)")
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
        if missing:
            raise UserError(f"{path}:{n}: field {missing[0]!r} is missing")
        if str(row.get("item", "")).startswith("sd3/"):
            raise UserError(f"{path}:{n}: SD-3 items must not enter training (held out)")
        pairs.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    if not pairs:
        raise UserError(f"{path}: no pairs")
    return pairs


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint the trainer finished writing (its state file is written last)."""
    done = [c for c in folder.glob("checkpoint-*") if (c / "trainer_state.json").is_file()]
    return max(done, key=lambda c: int(c.name.split("-")[1]), default=None)


def train_dpo(
    model_dir: Path,
    pairs_file: Path,
    out: Path,
    steps: int = 100,
    learning_rate: float = 5e-5,
    beta: float = 0.1,
    lora_r: int = 8,
    batch_size: int = 4,
    seed: int = 0,
    watcher: Watcher | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter with TRL's DPOTrainer; saves it (and its record) into ``out``.

    Checkpoints go to ``out/trainer`` every tenth of the steps; a rerun with the same request
    resumes from the last complete one, so an interrupted training loses at most that tenth.
    ``watcher`` follows the steps and the loss (the trainer's own bars and prints are off).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    pairs = read_pairs(pairs_file)
    claim(out)  # the adapter, its model card and README go into it: never a folder of the user's
    request = {
        "base_model_dir": str(model_dir),
        "pairs": str(pairs_file),
        "pairs_sha256": "sha256:" + hashlib.sha256(pairs_file.read_bytes()).hexdigest(),
        "n_pairs": len(pairs),
        "steps": steps,
        "learning_rate": learning_rate,
        "beta": beta,
        "lora_r": lora_r,
        "batch_size": batch_size,
        "seed": seed,
    }
    trainer_dir = out / "trainer"
    request_file = trainer_dir / "psyprobe-request.json"
    checkpoint = _last_checkpoint(trainer_dir)
    if checkpoint is None:  # nothing to resume: whatever asked before is not ours to keep
        request_file.unlink(missing_ok=True)
    hold_record(request_file, request, tuple(request), "DPO training")
    if watcher:
        watcher.log_to(out)
        watcher.phase(f"DPO training: {steps} steps on {len(pairs)} pairs")
    route_library_output()

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = DPOConfig(
        output_dir=str(trainer_dir),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        beta=beta,
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, steps // 10),
        save_total_limit=1,  # the newest stays until the next is complete
        report_to="none",
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=False,  # small models on CPU: memory is not the limit, time is
        # float32 throughout: TRL's configs now default to bfloat16 mixed precision, which a CPU
        # without bf16 units emulates (85 s a step of two SmolLM2 pairs here, against 9 s)
        bf16=False,
        max_length=512,
        disable_tqdm=True,  # progress goes to the watcher, not a bar of its own
    )
    lora = LoraConfig(
        r=lora_r,
        lora_alpha=2 * lora_r,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=lora,
    )

    class Steps(TrainerCallback):
        """Each step (the trainer logs every one) and its loss, to the watcher."""

        def on_log(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            logs = kw.get("logs") or {}
            if watcher and "loss" in logs:
                loss = f"training, loss {logs['loss']:.4f}"
                watcher.asking(loss, state.global_step, state.max_steps)

    trainer.remove_callback(PrinterCallback)  # it prints every loss dict on the screen
    trainer.add_callback(Steps())
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trained: Any = trainer.model  # the PEFT model: saving it writes the adapter alone
    trained.save_pretrained(str(out))
    # the log history comes back with a checkpoint, so losses cover every step
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    resumed = int(checkpoint.name.split("-")[1]) if checkpoint else None
    record = {**request, "resumed_from_step": resumed, "losses": losses}
    write_json(out / "psyprobe-dpo.json", record)
    return record
