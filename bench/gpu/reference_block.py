#!/usr/bin/env python3
"""The reference tool's side of bench/gpu/run.sh: the same block, data and settings as ours.

--make-only: builds a Llama-3-8B-shaped model (hidden 4096, intermediate 14336, 32 heads,
8 KV heads; 2 decoder blocks, a 32000-token vocabulary; random weights with transformers'
own initialisation, seeded; bf16) from a config, saves it in Hugging Face layout to OUT/model
with a word-level tokenizer over the ids (the reference insists on one) and writes OUT/calib.jsonl: NSAMPLES random token rows of SEQLEN. bench_block_tuning tunes
block 0 of exactly that.

Without --make-only: loads OUT/model and runs the reference tool (intel/auto-round, its source
on PYTHONPATH, see bench/gpu/prepare.sh) on it with OUT/calib.jsonl as its dataset: W4 G128
sym (scheme W4A16), ITERS iterations, batch 8, seed 42. Its SignRound quantizer is timed from
outside: a CUDA synchronize and a timestamp after each optimizer step, so seconds per
iteration is the median step-to-step interval of block 0 (setup, the fp forward and packing
left out, as ours leaves them out), its losses come from its own log line, and peak memory is
torch.cuda.max_memory_allocated() over block 0's tuning. Writes --json.

Python packages the reference imports but this run does not use (datasets, pydantic) are
stubbed when missing: the GPU machine reaches no package index.
"""

import argparse
import importlib.util
import json
import logging
import os
import re
import statistics
import sys
import time
import types


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, help="folder of model/ and calib.jsonl")
    p.add_argument("--make-only", action="store_true")
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--intermediate", type=int, default=14336)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--nsamples", type=int, default=8)
    p.add_argument("--seqlen", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="weights and token rows")
    p.add_argument("--compile", action="store_true", help="the reference's torch.compile path")
    p.add_argument("--json", help="write the figures here")
    return p.parse_args()


def make(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    config = LlamaConfig(hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                         num_hidden_layers=args.layers, vocab_size=args.vocab,
                         max_position_embeddings=max(4096, args.seqlen), rope_theta=10000.0,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model_dir = os.path.join(args.out, "model")
    model.save_pretrained(model_dir, safe_serialization=True)
    # The reference wants a tokenizer beside a model object (it does not use it with token
    # rows as its dataset): a word-level one over the ids, made here (no download).
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(args.vocab)},
                                       unk_token="t0"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=words, unk_token="t0", pad_token="t0",
                            bos_token="t1", eos_token="t2").save_pretrained(model_dir)
    # Our config reader takes the classic keys; newer transformers may write rope settings
    # under rope_parameters and the dtype as "dtype".
    path = os.path.join(model_dir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    saved.update({"torch_dtype": "bfloat16", "rope_theta": 10000.0, "model_type": "llama"})
    with open(path, "w") as f:
        json.dump(saved, f, indent=2)
    g = torch.Generator().manual_seed(args.seed + 1)
    ids = torch.randint(0, args.vocab, (args.nsamples, args.seqlen), generator=g)
    with open(os.path.join(args.out, "calib.jsonl"), "w") as f:
        for row in ids.tolist():
            f.write(json.dumps({"input_ids": row}) + "\n")
    print(f"made {model_dir} ({args.layers} blocks) and {args.nsamples} rows of {args.seqlen}")


def stub_missing(name, **attrs):
    """An empty module `name` with `attrs`, when the real one is not installed."""
    if importlib.util.find_spec(name) is not None:
        return
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    print(f"note: {name} is not installed; stubbed (not used by this run)")


def stub_packages():
    class _Any:
        def __init__(self, *a, **k):
            pass

    stub_missing("datasets", Dataset=_Any, Features=_Any, IterableDataset=_Any, Sequence=_Any,
                 Value=_Any, concatenate_datasets=lambda *a, **k: None,
                 load_dataset=lambda *a, **k: None)
    stub_missing("pydantic", BaseModel=object, Field=lambda *a, **k: None,
                 field_validator=lambda *a, **k: (lambda f: f),
                 model_validator=lambda *a, **k: (lambda f: f), ConfigDict=dict)


def run_reference(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stub_packages()
    import auto_round
    from auto_round import AutoRound
    from auto_round.algorithms.quantization.sign_round.quantizer import SignRoundQuantizer

    model_dir = os.path.join(args.out, "model")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model.eval()
    rows = []
    with open(os.path.join(args.out, "calib.jsonl")) as f:
        for line in f:
            rows.append(torch.tensor([json.loads(line)["input_ids"]], dtype=torch.long))

    blocks = []  # per quantize_block call: {"stamps": [...], "peak": bytes, "seconds": s}
    orig_block, orig_step = SignRoundQuantizer.quantize_block, SignRoundQuantizer._step

    def timed_block(self, *a, **k):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        blocks.append({"stamps": [time.perf_counter()]})
        result = orig_block(self, *a, **k)
        torch.cuda.synchronize()
        blocks[-1]["seconds"] = time.perf_counter() - blocks[-1]["stamps"][0]
        blocks[-1]["peak"] = torch.cuda.max_memory_allocated()
        return result

    def timed_step(self, *a, **k):
        result = orig_step(self, *a, **k)
        torch.cuda.synchronize()
        blocks[-1]["stamps"].append(time.perf_counter())
        return result

    SignRoundQuantizer.quantize_block = timed_block
    SignRoundQuantizer._step = timed_step

    losses = []

    class LossLog(logging.Handler):
        PATTERN = re.compile(r"loss iter 0: ([-+0-9.einfa]+) -> iter (\d+): ([-+0-9.einfa]+)")

        def emit(self, record):
            m = self.PATTERN.search(record.getMessage())
            if m:
                losses.append((float(m.group(1)), int(m.group(2)), float(m.group(3))))

    logging.getLogger("autoround").addHandler(LossLog())

    ar = AutoRound(model, tokenizer=tokenizer, scheme="W4A16", dataset=rows, iters=args.iters,
                   seqlen=args.seqlen, nsamples=args.nsamples, batch_size=args.batch_size,
                   seed=42, device_map="cuda:0", enable_torch_compile=args.compile,
                   low_gpu_mem_usage=False, low_cpu_mem_usage=False)
    start = time.perf_counter()
    ar.quantize()
    total = time.perf_counter() - start

    if not blocks or len(blocks[0]["stamps"]) < 3:
        sys.exit(f"error: the reference's SignRound quantizer did not run its steps ({blocks})")
    intervals = [b - a for a, b in zip(blocks[0]["stamps"][1:], blocks[0]["stamps"][2:])]
    first_interval = blocks[0]["stamps"][1] - blocks[0]["stamps"][0]
    loss_iter0, best_iter, loss_best = losses[0] if losses else (None, None, None)
    commit_file = os.path.join(os.path.dirname(os.path.dirname(auto_round.__file__)), "COMMIT")
    commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown"
    out = {
        "side": "auto-round" + (" (torch.compile)" if args.compile else ""),
        "auto_round_version": getattr(auto_round, "__version__", "unknown"),
        "auto_round_commit": commit,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0),
        "tokens_per_iteration": args.batch_size * args.seqlen,
        "nsamples": args.nsamples,
        "seqlen": args.seqlen,
        "iters": args.iters,
        "seconds_per_iteration": statistics.median(intervals),
        "seconds_per_iteration_min": min(intervals),
        "first_iteration_seconds": first_interval,
        "block_seconds": [b.get("seconds") for b in blocks],
        "quantize_seconds": total,
        "loss_iter0": loss_iter0,
        "loss_best": loss_best,
        "best_iter": best_iter,
        "peak_device_bytes": blocks[0].get("peak"),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.make_only:
        make(args)
    else:
        run_reference(args)


if __name__ == "__main__":
    main()
