"""Text normalisation shared by training and serving.

The training corpus (Enron-Spam) is already lower-cased, ASCII-only and tokenised with spaces around
punctuation ("http : / / www . juno . com"), while real mail arrives raw (mixed case, HTML, Unicode).
`normalize` maps both to the same token stream, so the model cannot learn the format difference, and
replaces URLs, e-mail addresses, money amounts, phone numbers and other numbers with placeholder
tokens so that it learns "contains a link" rather than the particular links of one corpus.

Everything here is Python + `re` (no third-party imports): it runs in the serving image and must
stay fast. `normalize_reference` is the definition in the order a reader expects (tokenise,
addresses, links, numbers); `normalize` is the serving path that must return exactly the same string
(tested on every corpus text and on generated text) with fewer regex passes, and with tokenisation
done by the compiled `runtime._native.word_tokens` where it is built (`python -m runtime.build`),
else by a per-word memo.
"""

from __future__ import annotations

import html
import operator
import re
import unicodedata

from runtime.native import native

__all__ = ["PLACEHOLDERS", "URL_TOKEN", "normalize", "normalize_reference", "tokens"]

# Placeholder words (not secrets; ruff's S105 is fooled by the name "TOKEN").
URL_TOKEN = "urltoken"  # noqa: S105
EMAIL_TOKEN = "emailtoken"  # noqa: S105
MONEY_TOKEN = "moneytoken"  # noqa: S105
PHONE_TOKEN = "phonetoken"  # noqa: S105
NUMBER_TOKEN = "numtoken"  # noqa: S105
PLACEHOLDERS = (URL_TOKEN, EMAIL_TOKEN, MONEY_TOKEN, PHONE_TOKEN, NUMBER_TOKEN)

# --- HTML -------------------------------------------------------------------------------------------
# Every pattern here costs time linear in the text, whatever the text: hostile input ("<a x " a
# thousand times, an unclosed "<script", "<!--") must not make a scan to the end of the text per
# "<" (tests/runtime/test_text.py times the adversarial cases against a normal e-mail). A tag never
# contains "<" (so tag matches cannot overlap), and the paired constructs are found with str.find
# (_strip_pairs), which gives up on a name at its first unclosed opening.
_HTML_HINT = re.compile(r"<(?:html|body|div|p|br|table|td|tr|font|a|span|img|head|b|i|u|center)\b", re.I)
_HTML_DROPPED = ("script", "style", "head")
# The opening pattern for each set of names still worth looking for: once a name has no closing
# tag ahead, its later openings are skipped inside `re`, not one Python iteration each.
_HTML_DROP_OPEN = {
    names: re.compile(rf"<\s*({'|'.join(names)})\b", re.I)
    for names in (
        tuple(name for bit, name in enumerate(_HTML_DROPPED) if mask >> bit & 1)
        for mask in range(1, 1 << len(_HTML_DROPPED))
    )
}
_HTML_DROP_CLOSE = {name: re.compile(rf"<\s*/\s*{name}\s*>", re.I) for name in _HTML_DROPPED}
# Keep the link target of anchors: "click here" phishing hides the URL in href.
_HTML_HREF = re.compile(r"""<\s*a\b[^<>]*?\bhref\s*=\s*["']?([^"'\s<>]+)[^<>]*>""", re.I)
_HTML_TAG = re.compile(r"</?[a-z!][^<>]{0,2000}>", re.I)

# --- tokenisation (the Enron layout: every punctuation mark is its own token) ------------------------
# Letters and digits are split apart ("128bits" -> "128 bits") so every number becomes one placeholder.
# ("\S" in the last branch = any other non-space character: equivalent, and faster in `re`)
_TOKEN = re.compile(r"[a-z]+|[0-9]+|\S")

# The patterns below run on the token stream "tok tok tok", so they match raw and pre-tokenised text
# alike: "https://www.x.com/a" and "https : / / www . x . com / a" are the same string by then.
# Each starts with a literal so `re` can skip ahead quickly (this is on the serving hot path).
_URL_TAIL = r"(?: [./\-?=&_%~:#+] (?=[a-z0-9])[a-z0-9]+| (?=[0-9a-z]+ [./\-] [a-z0-9])[a-z0-9]+)*(?: /)?"
# "/ /" has been collapsed to "/" by then, like every run of one punctuation mark.
_URL_SCHEME = re.compile(r"(?:https?|ftp) : / [a-z0-9]+" + _URL_TAIL)
_URL_WWW = re.compile(r"www \. [a-z0-9]+" + _URL_TAIL)
# Only the domain is replaced; the local part stays as ordinary word tokens.
_EMAIL = re.compile(
    r"@ (?!(?:url|email|money|phone|num)token\b)[a-z0-9]+(?: [.\-] (?!https?\b|www\b)[a-z0-9]+)*"
)
_DIGITS = re.compile(r"[0-9]+")
_NUMBER_GROUP = re.compile(r"numtoken(?: [.,] numtoken)+")
_MONEY_SYMBOL = re.compile(r"\$ numtoken")
_MONEY_WORD = re.compile(r"numtoken (?:usd|dollars?|eur|euros?|gbp|pounds?)\b")
_PHONE = re.compile(r"numtoken(?: \))? (?:[\-.] )?numtoken (?:[\-.] )?numtoken")
# Runs of the same punctuation ("- - - - -", "* * *", ". . .") are layout, not content.
_PUNCT_RUN = re.compile(r"([^a-z0-9 ])(?: \1)+")  # runs on "tok tok": single spaces only
# Replacement = group 1. A C-level callable: the template r"\1" costs a Python call per match.
_FIRST_GROUP = operator.itemgetter(1)


_CURRENCY_SYMBOLS = ("\u00a3", "\u20ac", "\u00a5")  # pound, euro, yen -> "$"


def _strip_html(text: str) -> str:
    text = _strip_comments(text)
    text = _strip_dropped_elements(text)
    text = _HTML_HREF.sub(r" \1 ", text)
    return _HTML_TAG.sub(" ", text)


def _strip_comments(text: str) -> str:
    """`<!-- ... -->` (the shortest) -> " "; an unclosed `<!--` stays, as does all after it."""
    if "<!--" not in text:
        return text
    parts, pos = [], 0
    while (start := text.find("<!--", pos)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:  # no "-->" after here: no later comment can close either
            break
        parts += [text[pos:start], " "]
        pos = end + 3
    parts.append(text[pos:])
    return "".join(parts)


def _strip_dropped_elements(text: str) -> str:
    """`<script ...>...</script>` (also style, head; the shortest) -> " ". An opening whose
    closing tag never follows is left alone, and so is every later opening of that name."""
    if "<" not in text:
        return text
    parts, pos, search_from = [], 0, 0
    names = _HTML_DROPPED  # the names that may still have a closing tag ahead
    while names and (opening := _HTML_DROP_OPEN[names].search(text, search_from)) is not None:
        name = opening.group(1).lower()
        closing = _HTML_DROP_CLOSE[name].search(text, opening.end())
        if closing is None:
            names = tuple(n for n in names if n != name)
            search_from = opening.start() + 1
            continue
        parts += [text[pos : opening.start()], " "]
        pos = search_from = closing.end()
    parts.append(text[pos:])
    return "".join(parts)


def _to_ascii(text: str) -> str:
    # The training corpus is ASCII only: fold accents ("café" -> "cafe") and drop the rest.
    if text.isascii():
        return text
    # (str.translate with a dict looks up every character: ~100 us on 2 KB; replace is a C scan)
    for symbol in _CURRENCY_SYMBOLS:
        if symbol in text:
            text = text.replace(symbol, "$")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class _WordTokens(dict[str, str]):
    """Memo: one whitespace-delimited word of lower-cased ASCII text -> its tokens with every digit
    run already replaced by the number placeholder ("128bits," -> "numtoken bits ,") and every run
    of one punctuation mark made one ("--" -> "-").

    Tokens never span whitespace, so tokenising word by word equals tokenising the whole text, and
    mail is Zipfian: nearly every word of a new e-mail has been seen before, so the regex runs only
    on new words. Bounded: it is emptied when full (hostile input cannot grow it without limit; it
    refills with the common words within a few e-mails). Thread-safe: a race only recomputes a value.
    """

    __slots__ = ()
    MAX_WORDS = 50_000
    MAX_WORD_CHARS = 64

    def __missing__(self, word: str) -> str:
        # Runs of one punctuation mark inside the word are collapsed here, once per distinct word:
        # the pass over the whole text then meets only the runs that span words ("<!--" 4,000
        # times was 4,000 matches of that pass, each a call, per request).
        value = _PUNCT_RUN.sub(_FIRST_GROUP, _DIGITS.sub(NUMBER_TOKEN, " ".join(_TOKEN.findall(word))))
        if len(word) <= self.MAX_WORD_CHARS:
            if len(self) >= self.MAX_WORDS:
                self.clear()
            self[word] = value
        return value


_WORD_TOKENS = _WordTokens()


def _word_tokens_python(prepared: str) -> str:
    """The token stream of prepared text, digit runs as placeholders, runs of one mark made one."""
    return _PUNCT_RUN.sub(_FIRST_GROUP, " ".join(map(_WORD_TOKENS.__getitem__, prepared.split())))


# The same function in C (~10x faster), when built; tests/runtime/test_native.py holds them equal.
_word_tokens = _word_tokens_python if native is None else native.word_tokens

# With digits replaced before the address pattern runs, "@ 123" would no longer be taken for an
# e-mail domain (the pattern refuses to start at a placeholder): such texts take the reference order.
_AT_DIGIT = re.compile(r"@[\s@]*[0-9]")


def normalize(text: str) -> str:
    """Return the canonical, space-separated token stream of an e-mail (or SMS).

    Identical for training and serving; idempotent (normalize(normalize(x)) == normalize(x)).
    """
    text = _prepare(text)
    if "@" in text and _AT_DIGIT.search(text):
        return _normalize_tokens_reference(text)
    # Fast path, same output as the reference order (tested on every corpus text): digit runs are
    # replaced while tokenising (in C, or memoised per word), which the link patterns cannot tell apart
    # because they match digit runs and "numtoken" alike.
    text = _word_tokens(text)
    if "@" in text:
        text = _EMAIL.sub(EMAIL_TOKEN, text)
    if ": /" in text:
        text = _URL_SCHEME.sub(URL_TOKEN, text)
    if "www" in text:
        text = _URL_WWW.sub(URL_TOKEN, text)
    return _numbers(text)


def _prepare(text: str) -> str:
    """HTML, entities, ASCII folding and lower case: everything before tokenisation."""
    if "<" in text and _HTML_HINT.search(text):
        text = _strip_html(text)
    if "&" in text:
        text = html.unescape(text)
    return _to_ascii(text).lower()


def _numbers(text: str) -> str:
    """Number groups, money amounts and phone numbers, once digit runs are placeholders."""
    if "numtoken" in text:
        if "numtoken , numtoken" in text or "numtoken . numtoken" in text:
            text = _NUMBER_GROUP.sub(NUMBER_TOKEN, text)
        if "$" in text:
            text = _MONEY_SYMBOL.sub(MONEY_TOKEN, text)
        # (five substring guards cost more than this one literal-prefixed pass)
        text = _MONEY_WORD.sub(MONEY_TOKEN, text)
        text = _PHONE.sub(PHONE_TOKEN, text)
    return text


def _normalize_tokens_reference(text: str) -> str:
    """The reference order on prepared text: tokenise, addresses and links, then numbers."""
    text = _PUNCT_RUN.sub(_FIRST_GROUP, " ".join(_TOKEN.findall(text)))
    if "@" in text:
        text = _EMAIL.sub(EMAIL_TOKEN, text)
    if ": /" in text:
        text = _URL_SCHEME.sub(URL_TOKEN, text)
    if "www" in text:
        text = _URL_WWW.sub(URL_TOKEN, text)
    return _numbers(_DIGITS.sub(NUMBER_TOKEN, text))


def normalize_reference(text: str) -> str:
    """`normalize` without the fast path (the definition it must equal; used by the tests)."""
    return _normalize_tokens_reference(_prepare(text))


def tokens(normalized: str) -> list[str]:
    """Split a normalised text into the model's feature tokens (words, punctuation, placeholders)."""
    return normalized.split()
