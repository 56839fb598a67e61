"""The serving normaliser and scorer over every text of the training and evaluation corpora (read with
training's own readers): the normaliser equals the reference implementation, and the compiled
runtime (runtime/_native.c) equals the Python and numpy path, on all of them."""

from __future__ import annotations

import pathlib

import pytest

from runtime.classifier import ScamClassifier
from runtime.native import native
from runtime.text import _prepare, _word_tokens_python, normalize, normalize_reference

from .conftest import MODEL_DIR


@pytest.fixture(scope="module")
def corpus_texts(data_dir: pathlib.Path) -> list[str]:
    from training.evaluate import load_eval_examples
    from training.train import read_examples

    texts = [e.text for e in read_examples(data_dir / "enron_spam_6subsets.csv.gz", for_training=True)]
    texts += [e.text for e in read_examples(data_dir / "sms_spam_collection_5572.csv", for_training=True)]
    eval_path = data_dir / "eval_nazario_phish_vs_spamassassin_easyham.csv.gz"
    texts += [e.text for e in load_eval_examples(eval_path, all_rows=True)]
    return texts


def test_serving_normalize_equals_the_reference_on_every_corpus_text(corpus_texts: list[str]) -> None:
    texts = corpus_texts
    differing = [t[:120] for t in texts if normalize(t) != normalize_reference(t)]
    assert not differing, differing[:3]


def test_the_compiled_runtime_equals_python_on_every_corpus_text(corpus_texts: list[str]) -> None:
    assert native is not None, "runtime/_native.c is not built: run `python -m runtime.build`"
    prepared = [_prepare(t) for t in corpus_texts]
    differing = [p[:120] for p in prepared if native.word_tokens(p) != _word_tokens_python(p)]
    assert not differing, differing[:3]
    compiled, numpy_scorer = ScamClassifier.load(MODEL_DIR), ScamClassifier.load(MODEL_DIR, use_native=False)
    assert compiled.scorer == "native"
    assert compiled.decisions(corpus_texts) == numpy_scorer.decisions(corpus_texts)
