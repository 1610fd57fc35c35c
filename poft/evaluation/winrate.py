"""Pairwise win rate of a model's replies against a fixed reference's, computed with alpaca_eval's metrics.

    poft evaluate generate --suite micro --model CKPT --data WORK/data --out OUT.json
    poft evaluate winrate --suite micro --data WORK/data --outputs OUT.json --reference REF.json --out-dir METRICS

Replies are generated in batches with each model's own chat template (greedy unless the spec says otherwise)
and stored in alpaca_eval's model-outputs layout, a JSON list of {"instruction", "output", "generator"}, with
the generation settings beside it (<out>.generation.json). The reference is a local file of the same layout:
alpaca_eval's own hub loading of reference outputs is broken on current `datasets`.

Beside <task>.json goes <task>.items.json (poft.evaluation.items): each prompt's verdict (100 win, 50 draw,
0 loss), keyed by the prompt's id in the reference (its "id", else its row number), so that two checkpoints'
verdicts against the same reference pair prompt by prompt.
"""

from __future__ import annotations

import dataclasses
import json
import time
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
    """Generate one reply per prompt and write them (alpaca_eval layout) plus the settings used.

    chat_template: a poft.templates name or Jinja file replacing the model's own (None: keep it)."""
    from ..scoring import load_model_and_tokenizer
    from ..templates import template_record

    started = time.time()
    model, tokenizer = load_model_and_tokenizer(model_source, device, dtype, chat_template=chat_template)
    replies = generate(model, tokenizer, [[{"role": "user", "content": p["instruction"]}] for p in prompts], spec)
    generator = generator or Path(model_source.rstrip("/")).name
    rows = [{"id": p["id"], "instruction": p["instruction"], "output": r, "generator": generator}
            for p, r in zip(prompts, replies)]
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


def pair_outputs(outputs: list[dict], reference: list[dict], outputs_path: str, reference_path: str) -> list[Pair]:
    """Pairs in the reference's order (alpaca_eval's length control indexes instructions by position), matched
    by id when both files carry ids, else by instruction. Unmatched rows are errors, never dropped."""
    key = _pairing_key(outputs, reference)
    by_key = {}
    for r in outputs:
        if str(r[key]) in by_key:
            raise ValueError(f"{outputs_path}: duplicate {key} {r[key]!r}")
        by_key[str(r[key])] = r
    ref_keys = [str(r[key]) for r in reference]
    missing = [k for k in ref_keys if k not in by_key]
    extra = sorted(set(by_key) - set(ref_keys))
    if missing or extra:
        raise ValueError(f"{outputs_path} and {reference_path} do not cover the same prompts (matched by {key}): "
                         f"{len(missing)} reference row(s) without an output (e.g. {missing[:1]}), "
                         f"{len(extra)} output(s) without a reference (e.g. {extra[:1]})")
    pairs = []
    for r in reference:
        o = by_key[str(r[key])]
        if o["instruction"] != r["instruction"]:
            raise ValueError(f"{key} {r[key]!r}: the instruction differs between {outputs_path} and {reference_path}")
        pairs.append(Pair(r["instruction"], r["output"], o["output"]))
    return pairs


def prompt_ids(outputs: list[dict], reference: list[dict]) -> list[str]:
    """The id of each pair of `pair_outputs`: the reference row's "id" when the pairing is by id, else its row
    number (alpaca_eval's reference has no ids; `read_prompts` numbers its rows the same way). The reference is
    fixed across checkpoints, so these ids are too."""
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


def winrate_items(task: str, ids: list[str], preferences, groups: list[str] | None = None) -> dict:
    """The poft.items/1 object of a win rate: the judged prompts' verdicts (unjudged ones left out)."""
    scores = verdict_scores(preferences)
    kept = [i for i, s in enumerate(scores) if s is not None]
    return make_items(task, "win_rate", [ids[i] for i in kept], [scores[i] for i in kept],
                      None if groups is None else [groups[i] for i in kept])


def evaluate_winrate(outputs_path: str, reference_path: str, judge_name: str, judge, out_dir: str | Path,
                     task: str = "winrate", lc: bool = False, item_group: str | None = None,
                     prompts_path: str | None = None) -> Path:
    """Judge every (reference, model) pair and write <out_dir>/<task>.json, its per-prompt verdicts
    (<task>.items.json, grouped by `item_group` of the reference or prompt rows) and the per-pair annotations."""
    outputs, generation = read_outputs(outputs_path)
    reference, ref_generation = read_outputs(reference_path)
    pairs = pair_outputs(outputs, reference, outputs_path, reference_path)
    ids = prompt_ids(outputs, reference)
    # Before the judge runs: a bad group field fails in a second, not after an hour of judging.
    groups = None if item_group is None else prompt_groups(item_group, ids, reference, prompts_path, reference_path)
    model_name = (generation or {}).get("generator") or outputs[0].get("generator") or Path(outputs_path).stem
    ref_name = (ref_generation or {}).get("generator") or reference[0].get("generator") or Path(reference_path).stem
    if model_name == ref_name:  # alpaca_eval tells the two sides apart by generator name
        model_name = f"{model_name} (evaluated)"
    annotations = annotate(judge_name, judge, pairs, ref_name, model_name)
    metrics, lc_note = winrate_metrics(annotations, lc)
    items = winrate_items(task, ids, annotations["preference"].tolist(), groups)
    check_mean(items, metrics["win_rate"], f"win rate {task!r}")
    record = metrics_record(
        checkpoint=(generation or {}).get("model", outputs_path), task=task, metric="win_rate",
        value=metrics["win_rate"], stderr=metrics.get("standard_error"), n=metrics["n_total"], metrics=metrics,
        settings={"judge": judge_name, "lc": lc}, versions={"alpaca_eval": package_version("alpaca_eval")},
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
    write_jsonl(Path(out_dir) / f"{task}.annotations.jsonl", annotations.assign(id=ids).to_dict(orient="records"))
    write_json(out, record)  # last: the metrics JSON is what the DAG waits for
    return out
