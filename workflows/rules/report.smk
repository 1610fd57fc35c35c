# The aggregation: every evaluation index -> tables in the paper's layout, paired PoFT - SFT differences,
# claim verdicts, plots and an HTML report in results_dir. It depends on the report code, so editing the
# tables code re-runs this job only; nothing upstream depends on it, so it never retrains a model.

DAG_START = f"{W}/logs/dag_start.json"


onstart:
    mark_dag_start(DAG_START)


rule report:
    input:
        evaluations=[evaluation_index(key) for key in EVALUATIONS],
        scores=[merged_scores(d) for d in REPORT_SCORES],
        kept=sorted(set(REPORT_KEPT.values())),
        trained=sorted({trained_file(r) for r in REPORT_TRACES}),
        code=REPORT_CODE,
    output:
        [f"{RESULTS}/{name}" for name in REPORT_FILES],
    params:
        options=report_options(),
        out=lambda wc, output: Path(output[0]).parent,
        dag_start=DAG_START,  # summary.json's DAG time (written when the run starts; not an input)
    log:
        f"{W}/logs/report.log",
    benchmark:
        f"{W}/benchmarks/report.tsv"
    threads: 1
    resources:
        **resources_of("report"),
    conda:
        "../envs/poft.yaml"
    shell:
        "poft report --evaluations {input.evaluations} {params.options} --dag-start {params.dag_start} "
        "--out-dir {params.out} > {log} 2>&1"
