"""The compiled runtime (runtime/_native.c) against the Python definition it replaces: the same
token streams and the same scores, to the last bit; and its refusals of input it cannot take."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runtime.text as text_module
from runtime.classifier import ScamClassifier
from runtime.native import native

from .adversarial_texts import adversarial, ordinary_html
from .conftest import MODEL_DIR
from .test_classifier import HAM, PHISH
from .test_text import _TRICKY_PIECES


def test_the_compiled_runtime_is_built() -> None:
    # Not a skip: without it the service runs at a third of the speed; a checkout or image lacking it fails.
    assert native is not None, "runtime/_native.c is not built: run `python -m runtime.build` (setup.sh does)"
    assert ScamClassifier.load(MODEL_DIR).scorer == "native"
    assert text_module._word_tokens is native.word_tokens


@pytest.fixture(scope="module")
def scorers() -> tuple[ScamClassifier, ScamClassifier]:
    assert native is not None
    return ScamClassifier.load(MODEL_DIR), ScamClassifier.load(MODEL_DIR, use_native=False)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_TRICKY_PIECES), max_size=40).map("".join))
def test_word_tokens_equal_the_python_definition_on_tricky_text(text: str) -> None:
    prepared = text_module._prepare(text)
    assert native is not None
    assert native.word_tokens(prepared) == text_module._word_tokens_python(prepared)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=400))
def test_word_tokens_equal_the_python_definition_on_any_ascii(text: str) -> None:
    # Raw ASCII, not lower-cased: capitals, controls and the whitespace str.split() knows (\\x1c-\\x1f).
    assert native is not None
    assert native.word_tokens(text) == text_module._word_tokens_python(text)


def _vocabulary_text(clf: ScamClassifier) -> st.SearchStrategy[str]:
    """Texts of known words (so unigrams and bigrams are found), unknown words and marks."""
    words = sorted(clf._word_ids)[:: max(1, len(clf._word_ids) // 3000)]
    common = ["click", "here", "verify", "your", "account", "the", "numtoken", "urltoken", ".", "!"]
    pieces = st.sampled_from([*words, *common, "zzqxq", "\n", "  "])
    return st.lists(pieces, max_size=120).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_scores_equal_the_numpy_scorer_to_the_last_bit(
    data: st.DataObject, scorers: tuple[ScamClassifier, ScamClassifier]
) -> None:
    compiled, numpy_scorer = scorers
    texts = data.draw(st.lists(_vocabulary_text(numpy_scorer), min_size=1, max_size=6))
    assert compiled.decisions(texts) == numpy_scorer.decisions(texts)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), min_size=1, max_size=4))
def test_scores_equal_the_numpy_scorer_on_any_text(
    texts: list[str], scorers: tuple[ScamClassifier, ScamClassifier]
) -> None:
    compiled, numpy_scorer = scorers
    assert compiled.decisions(texts) == numpy_scorer.decisions(texts)


def test_scores_equal_the_numpy_scorer_on_mail_and_hostile_text(
    scorers: tuple[ScamClassifier, ScamClassifier],
) -> None:
    compiled, numpy_scorer = scorers
    texts = [PHISH, HAM, "", " ", "\x00\x01", *adversarial(20_000).values(), ordinary_html(20_000)]
    assert compiled.decisions(texts) == numpy_scorer.decisions(texts)
    assert compiled.decisions(texts) == [compiled.decision_function(t) for t in texts]


def test_a_term_counted_past_the_tf_table_grows_it(scorers: tuple[ScamClassifier, ScamClassifier]) -> None:
    compiled, numpy_scorer = scorers
    size = len(compiled._tf)
    text = "verify your account " * (3 * size)
    assert compiled.decisions([text]) == numpy_scorer.decisions([text])
    assert len(compiled._tf) > 3 * size
    np.testing.assert_array_equal(compiled._tf[1:size], 1.0 + np.log(np.arange(1, size, dtype=np.float64)))


def test_text_that_is_not_prepared_ascii_is_refused(scorers: tuple[ScamClassifier, ScamClassifier]) -> None:
    assert native is not None
    compiled = scorers[0]
    with pytest.raises(ValueError, match="ASCII"):
        native.word_tokens("caf\u00e9")
    with pytest.raises(TypeError, match="str"):
        native.word_tokens(b"cafe")  # type: ignore[arg-type]
    assert compiled._native is not None
    with pytest.raises(ValueError, match="ASCII"):
        compiled._native.sums("caf\u00e9", compiled._tf)
    with pytest.raises(TypeError, match="tf must be"):
        compiled._native.sums("cafe", compiled._tf.astype(np.float32))


def test_tables_that_disagree_are_refused() -> None:
    assert native is not None
    column = np.array([0, -1], dtype=np.int64)
    keys = np.array([np.iinfo(np.int64).max], dtype=np.int64)
    cols = np.array([-1], dtype=np.int64)
    idf = np.ones(1)
    native.Scorer(["a"], column, keys, cols, idf, idf)  # consistent: accepted
    with pytest.raises(ValueError, match="lengths disagree"):
        native.Scorer(["a", "b"], column, keys, cols, idf, idf)
    with pytest.raises(ValueError, match="past the last term"):
        native.Scorer(["a"], np.array([5, -1], dtype=np.int64), keys, cols, idf, idf)
    with pytest.raises(ValueError, match="sorted"):
        native.Scorer(["a"], column, np.array([5, 1], dtype=np.int64), cols.repeat(2), idf, idf)
    with pytest.raises(TypeError, match="int64"):
        native.Scorer(["a"], column.astype(np.int32), keys, cols, idf, idf)
