# SFT / PoFT training: one job per run, a checkpoint per epoch. The job's output is the run's summary (written
# only when every epoch is done), not its directory: Snakemake deletes the outputs of a killed job, and the
# checkpoints must survive so that a re-run resumes from the last one.


rule train_model:
    input:
        unpack(train_inputs),
    output:
        f"{W}/runs/{{run}}/train_summary.json",
    params:
        command=train_command,
        rank_threads=rank_threads("training"),
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
        "OMP_NUM_THREADS={params.rank_threads} {params.command} >> {log} 2>&1"
