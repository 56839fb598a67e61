"""The shared normalisation: raw mail and the pre-tokenised Enron layout map to the same tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.text import normalize, tokens


@pytest.mark.parametrize(
    ("raw", "enron_style"),
    [
        (
            "Visit https://www.Example.com/login?id=3 NOW!",
            "visit https : / / www . example . com / login ? id = 3 now !",
        ),
        ("Mail me: john.doe@mail.example.org.", "mail me : john . doe @ mail . example . org ."),
        ("Only $1,000.50 today", "only $ 1 , 000 . 50 today"),
        ("Call 555-123-4567", "call 555 - 123 - 4567"),
        ("Don't wait -----", "don ' t wait - - - - -"),
    ],
)
def test_raw_and_enron_tokenised_text_normalise_identically(raw: str, enron_style: str) -> None:
    assert normalize(raw) == normalize(enron_style)


def test_placeholders_replace_urls_emails_money_phones_numbers() -> None:
    out = normalize(
        "Go to http://a.b.com/x or www.c.org, mail x@y.com, pay $20 or 50 USD, call 555-123-4567 or 42"
    )
    assert out.split().count("urltoken") == 2
    assert "emailtoken" in out
    assert out.split().count("moneytoken") == 2
    assert "phonetoken" in out
    assert out.endswith("numtoken")
    assert not any(ch.isdigit() for ch in out)


def test_html_is_stripped_and_link_targets_kept() -> None:
    html = (
        "<html><head><style>p {color: red}</style></head><body><p>Dear <b>Customer</b>,&nbsp;"
        '<a href="http://evil.example.ru/login">click here</a></p></body></html>'
    )
    out = normalize(html)
    assert out == "dear customer , urltoken click here"


def test_unicode_is_folded_to_ascii_and_currency_kept() -> None:
    assert normalize("Caf\u00e9 \u2013 \u00dcn\u00efcode \u00a35") == "cafe unicode moneytoken"


def test_tokens_split_the_normalised_text() -> None:
    assert tokens(normalize("Hello, World")) == ["hello", ",", "world"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_normalize_is_idempotent_and_never_fails(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert once == once.strip()
    assert "  " not in once
