# DPO continued from the final checkpoint of an SFT or PoFT run (Table 3); a checkpoint per DPO epoch. Like
# training, the job's output is a completion record, so an interrupted DPO run resumes.


rule dpo_model:
    input:
        unpack(dpo_inputs),
    output:
        f"{W}/runs/{{run}}/dpo_metrics.json",
    params:
        command=dpo_command,
        rank_threads=rank_threads("dpo"),
    log:
        f"{W}/logs/dpo/{{run}}.log",
    benchmark:
        f"{W}/benchmarks/dpo/{{run}}.tsv"
    priority: 20
    threads: res("dpo", "threads")
    resources:
        **resources_of("dpo"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={params.rank_threads} {params.command} >> {log} 2>&1"
