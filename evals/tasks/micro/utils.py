"""Row filters for the micro lm-eval tasks: each task reads one family of the micro world's task types.

Referenced from the YAMLs as `process_docs: !function utils.<family>`; the `task` field of a bench row names
its task type (poft.micro.world.TASKS). A row whose type is in no family fails loudly rather than being
scored by no task at all.
"""

FAMILIES = {
    "arith": ("add", "sub", "larger"),
    "words": ("reverse", "count"),
    "facts": ("capital", "color", "lucky"),
}
KNOWN = {t for types in FAMILIES.values() for t in types}


def _family(name):
    types = FAMILIES[name]

    def keep(dataset):
        unknown = sorted(set(dataset["task"]) - KNOWN)
        if unknown:
            raise ValueError(f"micro bench task type(s) {', '.join(unknown)} belong to no micro lm-eval task; "
                             f"add them to FAMILIES in {__file__}")
        return dataset.filter(lambda row: row["task"] in types)

    keep.__name__ = name
    return keep


arith = _family("arith")
words = _family("words")
facts = _family("facts")
