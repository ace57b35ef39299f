"""Help texts: the options defined without one get theirs here, and every option's help states its default."""

from __future__ import annotations

import argparse

HELP = {
    "db": "LanceDB directory (or s3://, gs://, az://, db:// URI) holding the index",
    "table": "table name inside the database",
    "batch_size": "inputs per forward pass when encoding",
    "adapter": "a trained SMART adapter directory (default: none)",
    "k": "number of hits",
    "mode": "rerank: pooled candidates then SMART; exhaustive: SMART over every row; pooled: single-vector only",
    "candidates": "pooled candidates re-scored by SMART",
    "json": "output as JSON",
    "split": "qrels split to evaluate on",
    "lambda_pool": "weight of the pooled cosine",
    "lambda_late": "weight of the late-interaction score",
    "epochs": "training epochs",
    "lr": "learning rate",
    "seed": "random seed",
    "path": "what to index: a JSONL file (a BEIR corpus or {id, text, metadata} lines), a BEIR folder "
    "(its corpus.jsonl) or a folder of .txt/.md files (one document per file, id = its relative path)",
    "query": "the query text",
    "beir_dir": "BEIR-layout dataset directory (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv)",
    "index_type": "LanceDB ANN index type on the pooled vectors (cosine)",
    "folds": "cross-validation folds (queries split at random by --seed)",
}
"""Help for the options defined without one (by ``dest``); :func:`document` fills them in."""


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the help already states it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.required
            or action.default is argparse.SUPPRESS
            or "default" in text.lower()
        ):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        shown = "none" if action.default is None else "%(default)s"
        return f"{text} (default: {shown})"


def document(parser: argparse.ArgumentParser) -> None:
    """Fill in :data:`HELP` and the help formatter on ``parser`` and its subcommands."""
    parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if action.help is None and action.dest in HELP:
            action.help = HELP[action.dest]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                document(sub)
