"""Arabic-aware ROUGE, and greedy oracle sentence labels for training the extractive summariser.

`rouge_score`'s default tokenizer keeps only `[a-z0-9]`, so it silently scores every Arabic text 0. Here
`RougeScorer` gets `ArabicTokenizer`, which folds spelling variants the way `naba.models.preprocessing` does for
comparisons and keeps words in any script. `oracle_indices` picks the sentences that best match a reference
summary; it runs over thousands of articles per training run, so it counts n-grams itself instead of
calling `RougeScorer` in its inner loop, and gives exactly the scores `RougeScorer` would give.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from naba.models.preprocessing import FOLD_ALL, normalize

if TYPE_CHECKING:
    from rouge_score.rouge_scorer import RougeScorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
# A run of letters or digits in any script; punctuation, symbols and "_" separate tokens and are dropped.
_TOKEN = re.compile(r"[^\W_]+")

Ngrams = Counter[tuple[str, ...]]


class ArabicTokenizer:
    """ROUGE tokenizer: fold with `FOLD_ALL`, lowercase, and keep runs of letters and digits.

    Folding (diacritics, tatweel, alef/yaa/taa marbuta variants, Arabic-Indic digits) makes spellings that
    outlets use interchangeably count as one word. The definite article "ال" and other clitics stay on
    the word: stripping them needs a stemmer, and a bare prefix rule also cuts words that only start with
    the same letters (التزام "commitment", الم from ألم "pain"). Scores are therefore comparable with
    other unstemmed Arabic ROUGE, and a little stricter than stemmed ones.
    """

    def tokenize(self, text: str) -> list[str]:
        """Return the word tokens of `text`, folded."""
        return _TOKEN.findall(normalize(text, FOLD_ALL).lower())


@lru_cache(maxsize=1)
def _scorer() -> RougeScorer:
    from rouge_score.rouge_scorer import RougeScorer  # imports nltk (seconds); the oracle does not need it

    return RougeScorer(list(ROUGE_TYPES), tokenizer=ArabicTokenizer())


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures of predictions against their references.

    Raises:
        ValueError: when the two sequences differ in length or are empty (a mean of nothing is no score).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references, strict=True):
        scores = _scorer().score(reference, prediction)
        for key in ROUGE_TYPES:
            totals[key] += scores[key].fmeasure
    return {key: total / len(predictions) for key, total in totals.items()}


def _ngrams(tokens: Sequence[str], n: int) -> Ngrams:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _f_measure(overlap: int, predicted: int, reference: int) -> float:
    """F-measure from n-gram counts, with the same float operations as `rouge_score`, so equal to it."""
    precision = overlap / max(predicted, 1)
    recall = overlap / max(reference, 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


class _Oracle:
    """N-gram counts of one article's sentences against a reference, to score many selections cheaply.

    Only n-grams that occur in the reference can overlap, so each sentence keeps just those (a handful)
    plus its n-gram totals; scoring a selection then touches a few counters instead of whole sentences.
    """

    def __init__(self, sentences: Sequence[str], reference: str) -> None:
        tokenizer = ArabicTokenizer()
        self.tokens = [tokenizer.tokenize(sentence) for sentence in sentences]
        reference_tokens = tokenizer.tokenize(reference)
        self.reference = (_ngrams(reference_tokens, 1), _ngrams(reference_tokens, 2))
        # Per sentence: its unigrams and bigrams that also occur in the reference.
        self.matches = [
            (_keep(_ngrams(t, 1), self.reference[0]), _keep(_ngrams(t, 2), self.reference[1]))
            for t in self.tokens
        ]

    def scores(self, indices: Sequence[int]) -> tuple[float, float]:
        """ROUGE-1 and ROUGE-2 F of the selected sentences joined in article order with spaces."""
        chosen = [i for i in sorted(indices) if self.tokens[i]]
        unigrams: Ngrams = Counter()
        bigrams: Ngrams = Counter()
        for i in chosen:
            unigrams.update(self.matches[i][0])
            bigrams.update(self.matches[i][1])
        # Joining sentences makes a bigram across each seam, as it does for RougeScorer on the joined text.
        for left, right in itertools.pairwise(chosen):
            seam = (self.tokens[left][-1], self.tokens[right][0])
            if seam in self.reference[1]:
                bigrams[seam] += 1
        n_unigrams = sum(len(self.tokens[i]) for i in chosen)
        n_bigrams = max(n_unigrams - 1, 0)  # one per adjacent pair of tokens, seams included
        reference_unigrams, reference_bigrams = self.reference
        return (
            _f_measure(_overlap(unigrams, reference_unigrams), n_unigrams, reference_unigrams.total()),
            _f_measure(_overlap(bigrams, reference_bigrams), n_bigrams, reference_bigrams.total()),
        )


def _keep(ngrams: Ngrams, reference: Ngrams) -> Ngrams:
    return Counter({gram: count for gram, count in ngrams.items() if gram in reference})


def _overlap(candidate: Ngrams, reference: Ngrams) -> int:
    return sum(min(count, reference[gram]) for gram, count in candidate.items())


def oracle_indices(sentences: Sequence[str], reference: str, max_sentences: int = 3) -> list[int]:
    """Greedily pick the sentences whose concatenation best matches `reference` (BertSum/Nallapati style).

    Each step adds the sentence that most raises ROUGE-1 F + ROUGE-2 F of the selection (the earliest
    sentence on a tie); selection stops when no sentence raises it or `max_sentences` are chosen. The
    result labels sentences 1/0 for training an extractive summariser.

    Returns:
        Indices into `sentences`, ascending; [] when there are no sentences or the reference has no words.
    """
    oracle = _Oracle(sentences, reference)
    if not oracle.reference[0]:
        return []
    selected: list[int] = []
    best = 0.0
    while len(selected) < max_sentences:
        choice = None
        for i, tokens in enumerate(oracle.tokens):
            if i in selected or not tokens:
                continue
            score = sum(oracle.scores([*selected, i]))
            if score > best:
                best, choice = score, i
        if choice is None:
            break
        selected.append(choice)
    return sorted(selected)
