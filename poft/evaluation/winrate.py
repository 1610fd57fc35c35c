"""Pairwise win rate of a model's replies against a fixed reference's, computed with alpaca_eval's metrics.

    poft evaluate generate --suite micro --model CKPT --data WORK/data --out OUT.json
    poft evaluate winrate --suite micro --data WORK/data --outputs OUT.json --reference REF.json --out-dir METRICS

Replies are generated in batches with each model's own chat template (greedy unless the spec says otherwise)
and stored in alpaca_eval's model-outputs layout, a JSON list of {"instruction", "output", "generator"} (poft
adds "id" and "sample"), with the generation settings beside it (<out>.generation.json). The reference is a local
file of the same layout: alpaca_eval's own hub loading of reference outputs is broken on current `datasets`.

A model may have several sampled replies per prompt (GenerationSpec.samples_per_prompt; rows without "sample"
are sample 0); the reference has one, as AlpacaEval's fixed GPT-4 replies. Every sample is judged against the
prompt's reference reply and the win rate is the mean over all (prompt, sample) pairs.

Beside <task>.json goes <task>.items.json (poft.evaluation.items): each prompt's verdict (100 win, 50 draw,
0 loss; with several samples their mean), keyed by the prompt's id in the reference (its "id", else its row
number), so that two checkpoints' verdicts against the same reference pair prompt by prompt.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from ..io import read_json, write_json, write_jsonl
from .generation import GenerationSpec, generate
from .items import check_mean, items_file_name, make_items, write_items
from .judges import Pair, describe
from .records import metrics_record, package_version

# ----------------------------------------------------------------------------------------------------------
# Prompts and replies
# ----------------------------------------------------------------------------------------------------------


def _rows(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    return rows


def read_prompts(path: str | Path) -> list[dict]:
    """[{"id", "instruction"}] from rows with "instruction" (alpaca_eval) or "prompt" (micro bench); ids default
    to the row number."""
    out = []
    for i, row in enumerate(_rows(path)):
        text = row.get("instruction", row.get("prompt"))
        if not isinstance(text, str):
            raise ValueError(f"{path}: row {row.get('id', i)!r} has no string field 'instruction' or 'prompt'")
        out.append({"id": str(row.get("id", i)), "instruction": text})
    return out


def generation_sidecar(outputs_path: str | Path) -> Path:
    return Path(f"{outputs_path}.generation.json")


def generate_outputs(model_source: str, prompts: list[dict], spec: GenerationSpec, out: str | Path,
                     generator: str | None = None, device: str = "auto", dtype: str = "auto",
                     chat_template: str | None = None) -> list[dict]:
    """Generate spec.samples_per_prompt replies per prompt and write them (alpaca_eval layout, one row per
    (prompt, sample)) plus the settings used.

    chat_template: a poft.templates name or Jinja file replacing the model's own (None: keep it)."""
    from ..scoring import load_model_and_tokenizer
    from ..templates import template_record

    started = time.time()
    model, tokenizer = load_model_and_tokenizer(model_source, device, dtype, chat_template=chat_template)
    replies = generate(model, tokenizer, [[{"role": "user", "content": p["instruction"]}] for p in prompts], spec)
    generator = generator or Path(model_source.rstrip("/")).name
    n = spec.samples_per_prompt  # replies come prompt-major: prompt i's sample k at i * n + k
    rows = [{"id": p["id"], "sample": k, "instruction": p["instruction"], "output": replies[i * n + k],
             "generator": generator} for i, p in enumerate(prompts) for k in range(n)]
    write_json(out, rows)
    write_json(generation_sidecar(out), {"model": model_source, "generator": generator, "n": len(rows),
                                         "settings": {**dataclasses.asdict(spec), "dtype": dtype,
                                                      "chat_template": template_record(tokenizer, chat_template)},
                                         "seconds": round(time.time() - started, 2)})
    return rows


def read_outputs(path: str | Path) -> tuple[list[dict], dict | None]:
    """Rows of an alpaca_eval-layout outputs file, and its generation settings when poft wrote it."""
    rows = _rows(path)
    for i, row in enumerate(rows):
        for key in ("instruction", "output"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{path}: row {row.get('id', i)!r} has no string field {key!r}")
    sidecar = generation_sidecar(path)
    return rows, (read_json(sidecar) if sidecar.is_file() else None)


def _pairing_key(outputs: list[dict], reference: list[dict]) -> str:
    return "id" if all("id" in r for r in outputs + reference) else "instruction"


def _samples_by_key(outputs: list[dict], key: str, outputs_path: str) -> tuple[dict[str, list[dict]], int]:
    """Each prompt's replies in sample order, and how many each prompt has (the same for all: every prompt must
    weigh the same in the win rate)."""
    by_key: dict[str, dict[int, dict]] = {}
    for r in outputs:
        samples = by_key.setdefault(str(r[key]), {})
        if r.get("sample", 0) in samples:
            raise ValueError(f"{outputs_path}: duplicate {key} {r[key]!r} (sample {r.get('sample', 0)})")
        samples[r.get("sample", 0)] = r
    counts = {k: len(v) for k, v in by_key.items()}
    if len(set(counts.values())) > 1:
        few = min(counts, key=counts.get)
        raise ValueError(f"{outputs_path}: prompts have different numbers of samples ({few!r}: {counts[few]}, "
                         f"others up to {max(counts.values())})")
    return {k: [v[s] for s in sorted(v)] for k, v in by_key.items()}, max(counts.values(), default=1)


def pair_outputs(outputs: list[dict], reference: list[dict], outputs_path: str,
                 reference_path: str) -> tuple[list[Pair], int]:
    """Pairs in the reference's order (alpaca_eval's length control indexes instructions by position), matched
    by id when both files carry ids, else by instruction, and the samples per prompt: each of a prompt's sampled
    replies is paired with its one reference reply, prompt-major. Unmatched rows are errors, never dropped."""
    key = _pairing_key(outputs, reference)
    by_key, n_samples = _samples_by_key(outputs, key, outputs_path)
    ref_keys = [str(r[key]) for r in reference]
    twice = sorted(k for k, n in Counter(ref_keys).items() if n > 1)
    if twice:
        raise ValueError(f"{reference_path}: duplicate {key} {twice[0]!r}: a reference holds one reply per prompt")
    missing = [k for k in ref_keys if k not in by_key]
    extra = sorted(set(by_key) - set(ref_keys))
    if missing or extra:
        raise ValueError(f"{outputs_path} and {reference_path} do not cover the same prompts (matched by {key}): "
                         f"{len(missing)} reference row(s) without an output (e.g. {missing[:1]}), "
                         f"{len(extra)} output(s) without a reference (e.g. {extra[:1]})")
    pairs = []
    for r in reference:
        for o in by_key[str(r[key])]:
            if o["instruction"] != r["instruction"]:
                raise ValueError(f"{key} {r[key]!r}: the instruction differs between {outputs_path} and "
                                 f"{reference_path}")
            pairs.append(Pair(r["instruction"], r["output"], o["output"]))
    return pairs, n_samples


def prompt_ids(outputs: list[dict], reference: list[dict]) -> list[str]:
    """The id of each prompt (reference row) of `pair_outputs`: the reference row's "id" when the pairing is by
    id, else its row number (alpaca_eval's reference has no ids; `read_prompts` numbers its rows the same way).
    The reference is fixed across checkpoints, so these ids are too."""
    key = _pairing_key(outputs, reference)
    return [str(r["id"]) if key == "id" else str(i) for i, r in enumerate(reference)]


def prompt_groups(field: str, ids: list[str], reference: list[dict], prompts_path: str | None,
                  reference_path: str) -> list[str]:
    """Each pair's `field`: from its reference row (alpaca_eval's "dataset"), else from the prompt row of the same
    id in the prompts file (the micro bench's "task": poft's outputs files carry only id, instruction, output)."""
    if all(field in r for r in reference):
        return [str(r[field]) for r in reference]
    if not prompts_path:
        raise ValueError(f"win-rate item_group {field!r}: {reference_path} rows have no such field and no prompts "
                         "file was given to look it up in")
    rows = _rows(prompts_path)
    by_id = {str(row.get("id", i)): row for i, row in enumerate(rows)}
    missing = [i for i in ids if field not in by_id.get(i, {})]
    if missing:
        raise ValueError(f"win-rate item_group {field!r}: neither {reference_path} nor {prompts_path} has it for "
                         f"{len(missing)} prompt id(s) (e.g. {missing[0]!r})")
    return [str(by_id[i][field]) for i in ids]


# ----------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------


def _plain(x):
    """numpy scalars -> Python numbers, NaN -> None (JSON has no NaN)."""
    x = x.item() if hasattr(x, "item") else x
    return None if isinstance(x, float) and x != x else x


def winrate_metrics(annotations: pd.DataFrame, lc: bool) -> tuple[dict, str | None]:
    """alpaca_eval's win-rate metrics for annotations (columns: preference, output_1, output_2, generator_1,
    generator_2, annotator), plus its length-controlled win rate when asked for and its data can be had."""
    from alpaca_eval.metrics import get_winrate

    metrics = {k: _plain(v) for k, v in get_winrate(annotations).items()}
    if not lc:
        return metrics, "not requested"
    try:
        from alpaca_eval.metrics import get_length_controlled_winrate

        out = get_length_controlled_winrate(annotations, save_weights_dir=None, is_add_glm_preference_inplace=False)
    except Exception as e:  # noqa: BLE001 - the GLM fetches AlpacaEval's instruction data from the hub
        return metrics, f"length-controlled win rate unavailable: {type(e).__name__}: {e}"
    metrics.update({k: _plain(v) for k, v in out.items() if k not in metrics})
    return metrics, None


def annotate(judge_name: str, judge, pairs: list[Pair], reference_name: str, model_name: str) -> pd.DataFrame:
    prefs = judge.preferences(pairs, reference_name, model_name)
    if len(prefs) != len(pairs):
        raise ValueError(f"judge {judge_name!r} returned {len(prefs)} preferences for {len(pairs)} pairs")
    return pd.DataFrame({
        "instruction": [p.instruction for p in pairs], "output_1": [p.reference for p in pairs],
        "output_2": [p.output for p in pairs], "generator_1": reference_name, "generator_2": model_name,
        "annotator": judge_name, "preference": prefs,
    })


def verdict_scores(preferences) -> list[float | None]:
    """Each pair's verdict in percent, the units of alpaca_eval's win_rate, which is their mean.

    alpaca_eval's preference encoding: 1 = the reference's reply wins -> 0, 2 = the model's wins -> 100,
    1.5 (or 0, its legacy code) = draw -> 50; a soft preference p in [1, 2] (weighted judges) -> 100 (p - 1).
    Anything else (NaN: the judge gave no verdict) is None: alpaca_eval drops it from the win rate too.
    """
    out = []
    for p in preferences:
        p = 1.5 if p == 0 else float(p)
        out.append(100.0 * (p - 1.0) if 1.0 <= p <= 2.0 else None)
    return out


def whole_prompts(ids: list[str], preferences) -> list[float]:
    """The preferences with every sample of a prompt that has an unjudged one (NaN) unjudged too: each judged
    prompt then has all its samples, weighs the same in the win rate, and its items' mean is the win rate."""
    partly = {i for i, s in zip(ids, verdict_scores(preferences)) if s is None}
    return [math.nan if i in partly else float(p) for i, p in zip(ids, preferences)]


def winrate_items(task: str, ids: list[str], preferences, groups: list[str] | None = None) -> dict:
    """The poft.items/1 object of a win rate: one item per judged prompt, scored by the mean verdict over its
    sampled replies (the pairs that share its id; unjudged ones left out)."""
    scores: dict[str, list[float]] = {}
    group_of: dict[str, str | None] = {}
    for k, (i, s) in enumerate(zip(ids, verdict_scores(preferences))):
        if s is not None:
            scores.setdefault(i, []).append(s)
            group_of[i] = None if groups is None else groups[k]
    return make_items(task, "win_rate", list(scores), [math.fsum(v) / len(v) for v in scores.values()],
                      None if groups is None else list(group_of.values()))


def sampling_settings(generation: dict | None, n_samples: int) -> dict:
    """How the model's replies were decoded (from its generation sidecar; None where unknown) and how many per
    prompt the win rate averages over: a greedy and a sampled win rate measure different things."""
    gen = (generation or {}).get("settings") or {}
    return {"do_sample": gen.get("do_sample"), "temperature": gen.get("temperature"), "seed": gen.get("seed"),
            "samples_per_prompt": n_samples}


def evaluate_winrate(outputs_path: str, reference_path: str, judge_name: str, judge, out_dir: str | Path,
                     task: str = "winrate", lc: bool = False, item_group: str | None = None,
                     prompts_path: str | None = None) -> Path:
    """Judge every (reference, model) pair and write <out_dir>/<task>.json, its per-prompt verdicts
    (<task>.items.json, grouped by `item_group` of the reference or prompt rows) and the per-pair annotations."""
    outputs, generation = read_outputs(outputs_path)
    reference, ref_generation = read_outputs(reference_path)
    pairs, n_samples = pair_outputs(outputs, reference, outputs_path, reference_path)
    prompts = prompt_ids(outputs, reference)
    # Before the judge runs: a bad group field fails in a second, not after an hour of judging.
    groups = None if item_group is None else prompt_groups(item_group, prompts, reference, prompts_path,
                                                           reference_path)
    ids = [i for i in prompts for _ in range(n_samples)]  # each pair's prompt
    groups = groups and [g for g in groups for _ in range(n_samples)]
    model_name = (generation or {}).get("generator") or outputs[0].get("generator") or Path(outputs_path).stem
    ref_name = (ref_generation or {}).get("generator") or reference[0].get("generator") or Path(reference_path).stem
    if model_name == ref_name:  # alpaca_eval tells the two sides apart by generator name
        model_name = f"{model_name} (evaluated)"
    annotations = annotate(judge_name, judge, pairs, ref_name, model_name)
    annotations["preference"] = whole_prompts(ids, annotations["preference"].tolist())
    metrics, lc_note = winrate_metrics(annotations, lc)
    items = winrate_items(task, ids, annotations["preference"].tolist(), groups)
    check_mean(items, metrics["win_rate"], f"win rate {task!r}")
    record = metrics_record(
        checkpoint=(generation or {}).get("model", outputs_path), task=task, metric="win_rate",
        value=metrics["win_rate"], stderr=metrics.get("standard_error"), n=metrics["n_total"], metrics=metrics,
        settings={"judge": judge_name, "lc": lc, **sampling_settings(generation, n_samples)},
        versions={"alpaca_eval": package_version("alpaca_eval")},
        items_file=items_file_name(task), n_items=len(items["ids"]),
        lc_win_rate=metrics.get("length_controlled_winrate"), lc_note=lc_note, n_wins=metrics["n_wins"],
        n_wins_reference=metrics["n_wins_base"], n_draws=metrics["n_draws"], judge=describe(judge_name, judge),
        outputs=str(outputs_path), generation=generation and generation["settings"],
        reference={"path": str(reference_path), "generator": ref_name,
                   "generation": ref_generation and ref_generation["settings"]},
    )
    out = Path(out_dir) / f"{task}.json"
    write_items(out_dir, items)
    # .jsonl, so that a glob for the metrics files (*.json) does not pick the annotations up
    samples = [k for _ in prompts for k in range(n_samples)]
    write_jsonl(Path(out_dir) / f"{task}.annotations.jsonl",
                annotations.assign(id=ids, sample=samples).to_dict(orient="records"))
    write_json(out, record)  # last: the metrics JSON is what the DAG waits for
    return out
