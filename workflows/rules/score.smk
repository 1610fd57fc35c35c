# Scores: each aligned LLM scores each data key once (its own template and tokenizer), the scores are merged
# into their mean per sample; IFD under a base model for the IFD filter; seeded permutations of the merged
# scores for the shuffled-score control; and the filters' kept ids (scope: the base model for IFD, which is
# computed under it, else "all").


rule score_dataset:
    input:
        data=lambda wc: data_file(wc.data),
        model=lambda wc: model_ready(wc.aligned),
    output:
        f"{W}/scores/{{data}}/aligned/{{aligned}}.json",
    params:
        command=score_command("aligned", "aligned"),
        rank_threads=rank_threads("scoring"),
    log:
        f"{W}/logs/score/{{data}}/{{aligned}}.log",
    benchmark:
        f"{W}/benchmarks/score/{{data}}/{{aligned}}.tsv"
    priority: 40
    threads: res("score", "threads")
    resources:
        **resources_of("score"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={params.rank_threads} {params.command} > {log} 2>&1"


rule merge_scores:
    input:
        lambda wc: expand(f"{W}/scores/{wc.data}/aligned/{{aligned}}.json", aligned=list(config["aligned"])),
    output:
        f"{W}/scores/{{data}}/merged.json",
    params:
        names=list(config["aligned"]),
    log:
        f"{W}/logs/score/{{data}}/merge.log",
    benchmark:
        f"{W}/benchmarks/score/{{data}}/merge.tsv"
    priority: 40
    threads: 1
    resources:
        **resources_of("data"),
    conda:
        "../envs/poft.yaml"
    shell:
        "poft merge-scores --scores {input} --names {params.names} --out {output} > {log} 2>&1"


rule score_ifd:
    input:
        data=lambda wc: data_file(wc.data),
        model=lambda wc: model_ready(wc.base),
    output:
        f"{W}/scores/{{data}}/ifd/{{base}}.json",
    params:
        command=score_command("ifd", "base"),
        rank_threads=rank_threads("scoring"),
    log:
        f"{W}/logs/score/{{data}}/ifd.{{base}}.log",
    benchmark:
        f"{W}/benchmarks/score/{{data}}/ifd.{{base}}.tsv"
    priority: 40
    threads: res("score", "threads")
    resources:
        **resources_of("score"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={params.rank_threads} {params.command} > {log} 2>&1"


rule shuffle_scores:
    input:
        f"{W}/scores/{{data}}/merged.json",
    output:
        f"{W}/scores/{{data}}/shuffled/seed{{seed}}.json",
    log:
        f"{W}/logs/score/{{data}}/shuffle.seed{{seed}}.log",
    benchmark:
        f"{W}/benchmarks/score/{{data}}/shuffle.seed{{seed}}.tsv"
    priority: 40
    threads: 1
    resources:
        **resources_of("data"),
    conda:
        "../envs/poft.yaml"
    shell:
        "poft shuffle-scores --scores {input} --seed {wildcards.seed} --out {output} > {log} 2>&1"


rule filter_dataset:
    input:
        data=lambda wc: data_file(wc.data),
        scores=filter_scores,
    output:
        f"{W}/filters/{{data}}/{{filter}}/{{scope}}.json",
    params:
        method=lambda wc: config["filters"][wc.filter]["method"],
        keep=lambda wc: config["filters"][wc.filter]["keep"],
        scores=lambda wc, input: f"--scores {input.scores}" if input.scores else "",
        scorer=lambda wc: optional_value("--scorer", config["filters"][wc.filter].get("scorer")),
        drop=lambda wc: optional_values("--drop", config["filters"][wc.filter].get("drop")),
    log:
        f"{W}/logs/filter/{{data}}/{{filter}}/{{scope}}.log",
    benchmark:
        f"{W}/benchmarks/filter/{{data}}/{{filter}}/{{scope}}.tsv"
    priority: 40
    threads: 1
    resources:
        **resources_of("data"),
    conda:
        "../envs/poft.yaml"
    shell:
        "poft filter --data {input.data} --method {params.method} --keep {params.keep} {params.scores} "
        "{params.scorer} {params.drop} --out {output} > {log} 2>&1"
