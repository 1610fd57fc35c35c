# SFT / PoFT training: one job per run, a checkpoint per epoch. The job's output is the run's summary (written
# only when every epoch is done), not its directory: Snakemake deletes the outputs of a killed job, and the
# checkpoints must survive so that a re-run resumes from the last one.


rule train_model:
    input:
        unpack(train_inputs),
    output:
        f"{W}/runs/{{run}}/train_summary.json",
    params:
        model=lambda wc: model_path(RUNS[wc.run].base),
        template=lambda wc: chat_template_flag(RUNS[wc.run].base),
        out=lambda wc, output: Path(output[0]).parent,
        scores=optional_flag("--scores", "scores"),
        keep=optional_flag("--keep-ids", "keep"),
        recipe=optional_flag("--config", "recipe"),
        options=train_options,
        launcher=config["training"]["launcher"],
    log:
        f"{W}/logs/train/{{run}}.log",
    benchmark:
        f"{W}/benchmarks/train/{{run}}.tsv"
    priority: 20
    threads: res("train", "threads")
    resources:
        **resources_of("train"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.launcher} train --data {input.data} --model {params.model:q} "
        "{params.template} {params.scores} {params.keep} {params.recipe} {params.options} --safe-resume "
        "--out {params.out} >> {log} 2>&1"
