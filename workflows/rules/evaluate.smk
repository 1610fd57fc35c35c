# Evaluation: every epoch's checkpoint of every run, and each reference row's model. One job per checkpoint
# (evaluation.per: checkpoint, for clusters), per run (all its epochs), or per group (every run of a base x
# dataset x variant: on a laptop the imports cost more than a micro evaluation). A job runs every suite --
# lm-eval tasks, then generation and the win rate against fixed reference outputs -- and writes an index of its
# metrics files with each checkpoint's identity (what the report reads). Metrics of a run's epoch E land in
# metrics/<run>/epoch<E>/ whatever the grouping. With evaluation.with_training a group's job first trains its runs
# (`poft batch`: one process; their logs go to the group's log).

if WINRATE_SUITE and "model" in REFERENCE:

    # --as-reference: the reference replies are greedy and one per prompt whatever the suite samples for the
    # checkpoints (a fixed reply set, as AlpacaEval's GPT-4 one); evaluation.reference.generation may override.

    rule reference_outputs:
        input:
            model=model_ready(REFERENCE["model"]),
            data=eval_data_ready(),
        output:
            REFERENCE_OUTPUTS,
        params:
            suite=WINRATE_SUITE,
            model=model_path(REFERENCE["model"]),
            template=chat_template_flag(REFERENCE["model"]),
            name=REFERENCE["model"],
            data=f"--data {eval_data_dir()}" if eval_data_dir() else "",
            generation=set_flags(REFERENCE["generation"]),
        log:
            f"{W}/logs/evaluate/reference_outputs.log",
        benchmark:
            f"{W}/benchmarks/evaluate/reference_outputs.tsv"
        threads: res("evaluate", "threads")
        resources:
            **resources_of("evaluate"),
        conda:
            "../envs/poft.yaml"
        shell:
            "OMP_NUM_THREADS={threads} poft evaluate generate --suite {params.suite} --model {params.model:q} "
            "{params.template} --name {params.name} {params.data} --as-reference {params.generation} --out {output} "
            "> {log} 2>&1"


if WINRATE_SUITE and "hub_file" in REFERENCE:

    rule fetch_reference_outputs:
        output:
            REFERENCE_OUTPUTS,
        params:
            repo=HUB_REPO,
            file=HUB_PATH,
            dir=lambda wc, output: Path(output[0]).parent / "hub",
        log:
            f"{W}/logs/evaluate/fetch_reference_outputs.log",
        benchmark:
            f"{W}/benchmarks/evaluate/fetch_reference_outputs.tsv"
        threads: 1
        resources:
            **resources_of("data"),
        conda:
            "../envs/poft.yaml"
        shell:
            "hf download {params.repo} {params.file:q} --repo-type dataset --local-dir {params.dir} > {log} 2>&1 "
            "&& cp {params.dir}/{params.file:q} {output}"


rule evaluate_checkpoint:
    input:
        unpack(evaluate_inputs),
    output:
        f"{W}/metrics/{{key}}/evaluation.json",
    params:
        command=evaluate_command,
    log:
        f"{W}/logs/evaluate/{{key}}.log",
    benchmark:
        f"{W}/benchmarks/evaluate/{{key}}.tsv"
    threads: res("evaluate", "threads")
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.command} > {log} 2>&1"
