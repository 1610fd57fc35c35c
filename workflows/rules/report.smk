# The aggregation: every evaluation index -> tables in the paper's layout, paired PoFT - SFT differences,
# claim verdicts, plots and an HTML report in results_dir. It depends on the report code, so editing the
# tables code re-runs this job only; nothing upstream depends on it, so it never retrains a model.


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
        benchmarks=f"{W}/benchmarks",  # summary.json's DAG time (not an input: only read)
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
        "poft report --evaluations {input.evaluations} {params.options} --benchmarks {params.benchmarks} "
        "--out-dir {params.out} > {log} 2>&1"
