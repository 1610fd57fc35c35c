# PoFT's experimental design as one DAG: data -> aligned scores -> SFT / PoFT (+ filtered, DPO, noise, controls,
# distillation) -> every epoch evaluated -> tables, claims, report. See workflows/README.md.
#   snakemake --cores all                                                   # the micro world, offline, on a laptop
#   snakemake --cores all --configfile workflows/configs/smoke.yaml         # CI's tiny end-to-end run
#   snakemake --profile workflows/profiles/slurm --configfile workflows/configs/paper.yaml   # the paper, on a cluster

from snakemake.utils import min_version

min_version("8.20")


# The micro default only when no --configfile is given (Snakemake would otherwise merge the two configs key by key).
if not workflow.config_settings.configfiles:

    configfile: "workflows/configs/micro.yaml"



include: "workflows/rules/common.smk"


if "micro" in config:

    include: "workflows/rules/micro.smk"


include: "workflows/rules/models.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/score.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/dpo.smk"
include: "workflows/rules/evaluate.smk"
include: "workflows/rules/report.smk"


# Light or download-bound: on a cluster they run on the submit host (which has the network).
localrules:
    all,
    report,
    merge_scores,
    shuffle_scores,
    prepare_dataset,
    prepare_pairs,
    fetch_model,


rule all:
    input:
        rules.report.output,
        [f"{WORLD}/manifest.json"] if "micro" in config and config["micro"]["manifest"] else [],
    default_target: True
