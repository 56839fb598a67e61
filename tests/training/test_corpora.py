"""The serving normaliser over every text of the training and evaluation corpora (read with training's
own readers): it equals the reference implementation on all of them."""

from __future__ import annotations

import pathlib

from runtime.text import normalize, normalize_reference


def test_serving_normalize_equals_the_reference_on_every_corpus_text(data_dir: pathlib.Path) -> None:
    from training.evaluate import load_eval_examples
    from training.train import read_examples

    texts = [e.text for e in read_examples(data_dir / "enron_spam_6subsets.csv.gz", for_training=True)]
    texts += [e.text for e in read_examples(data_dir / "sms_spam_collection_5572.csv", for_training=True)]
    eval_path = data_dir / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz"
    texts += [e.text for e in load_eval_examples(eval_path, all_rows=True)]
    differing = [t[:120] for t in texts if normalize(t) != normalize_reference(t)]
    assert not differing, differing[:3]
