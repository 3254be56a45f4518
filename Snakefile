# nasforge: rebuild a NAS benchmark from raw data to a versioned release.
# Rules live in workflow/rules/, one file per phase; helpers in common.smk.
# params.yaml is the default; a file given with --configfile replaces it. (Snakemake would
# otherwise deep-merge the two, and the embedded protocol's batch size would leak into a rebuild
# whose own file says `protocol: {}`.)
if not config:

    configfile: "params.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/oneshot.smk"
include: "workflow/rules/release.smk"


# Every wildcard that reaches a shell command is one of a fixed set of words.
wildcard_constraints:
    space="tss|sss",
    dataset="cifar10-valid|cifar10|cifar100|ImageNet16-120|mnist5k",
    algo="random|rea|reinforce|bohb|local|naswot",
    method="darts-v1|darts-v2|gdas|setn|random|enas|tas|mask_gumbel|mask_rl",
    hp="[0-9]+",
    seed="[0-9]+",
    k="[0-9]+",


rule all:
    input:
        release_manifest(),
