# Included only when the config has a `micro:` block. The offline micro world (poft.micro.build): data, then
# each base and aligned model (independent jobs: the five pretrainings run in parallel), then the manifest
# (how well the aligned models tell flawed from clean samples; a learning probe).


rule micro_data:
    output:
        f"{WORLD}/stages/data.json",
    params:
        out=lambda wc, output: Path(output[0]).parent.parent,
        seed=config["micro"]["seed"],
        options=set_flags(config["micro"]["options"]),
    log:
        f"{W}/logs/micro/data.log",
    benchmark:
        f"{W}/benchmarks/micro/data.tsv"
    priority: 50
    threads: res("micro", "threads")
    resources:
        **resources_of("micro"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} poft micro data --out {params.out} --seed {params.seed} {params.options} "
        "> {log} 2>&1"


rule micro_model:
    input:
        f"{WORLD}/stages/data.json",
    output:
        f"{WORLD}/stages/{{name}}.json",
    params:
        out=lambda wc, output: Path(output[0]).parent.parent,
        stage=lambda wc: "base" if wc.name in MICRO_MODELS["base"] else "aligned",
        seed=config["micro"]["seed"],
        options=set_flags(config["micro"]["options"]),
    wildcard_constraints:
        name="|".join(MICRO_MODELS["base"] + MICRO_MODELS["aligned"]),
    log:
        f"{W}/logs/micro/{{name}}.log",
    benchmark:
        f"{W}/benchmarks/micro/{{name}}.tsv"
    # the aligned models first: scoring waits on them, and then runs beside the last base model's pretraining
    priority: lambda wc: 51 if wc.name in MICRO_MODELS["aligned"] else 50
    threads: res("micro", "threads")
    resources:
        **resources_of("micro"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} poft micro {params.stage} --name {wildcards.name} --out {params.out} "
        "--seed {params.seed} {params.options} > {log} 2>&1"


rule micro_manifest:
    input:
        expand(f"{WORLD}/stages/{{name}}.json", name=["data", *MICRO_MODELS["base"], *MICRO_MODELS["aligned"]]),
    output:
        f"{WORLD}/manifest.json",
    params:
        out=lambda wc, output: Path(output[0]).parent,
        seed=config["micro"]["seed"],
        options=set_flags(config["micro"]["options"]),
    log:
        f"{W}/logs/micro/manifest.log",
    benchmark:
        f"{W}/benchmarks/micro/manifest.tsv"
    priority: 0
    threads: res("micro", "threads")
    resources:
        **resources_of("micro"),
    conda:
        "../envs/poft.yaml"
    shell:
        "OMP_NUM_THREADS={threads} poft micro manifest --out {params.out} --seed {params.seed} {params.options} "
        "> {log} 2>&1"
