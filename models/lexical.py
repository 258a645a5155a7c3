"""The lexical head: TF-IDF over word 1-2-grams plus the annotation guide's rules, one logistic regression per
label, its logits added to the network's article logits.

Why a bag of n-grams next to a BERT: with a few hundred labelled articles and an encoder pretrained on two CPU
cores, the network and TF-IDF + logistic regression over n-grams and rule features (the strongest baseline of
`bench/quality.py`) get different articles wrong, and a weighted sum of their logits tags better than either.
The head is fitted after the network is trained (`naba.training.lexical`), so the network is unchanged; how much
each label's lexical logit weighs (`NabaConfig.lexical_weights`) is tuned on dev with the calibration.

Stored as two files beside the weights, no pickles: `lexical.json` (vectoriser options and vocabularies in
column order, rule feature names) and `lexical.safetensors` (idf per column, one weight row and one bias per
label). scikit-learn vectorisers are rebuilt with a fixed vocabulary, so text is featurised as at fitting.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naba.models.errors import ArtifactError
from naba.models.preprocessing import FOLD_ALL, normalize
from naba.models.rules import RULES_VERSION, HasText, rule_features, unknown_rule_features

if TYPE_CHECKING:  # scikit-learn takes ~2 s to import: only artifacts with a lexical head pay for it
    from sklearn.feature_extraction.text import TfidfVectorizer
from safetensors.numpy import load_file, save_file
from scipy import sparse

LEXICAL_CONFIG = "lexical.json"
LEXICAL_WEIGHTS = "lexical.safetensors"
FORMAT_VERSION = 1
# Words and word pairs. Character 3-5-grams as well (the TF-IDF baseline's, which catch words under their
# clitics) tagged no better next to the rule features and made `naba predict` with the shipped model's small
# encoder much slower (training/RECIPES.md, section 6).
VECTORIZERS: tuple[dict[str, Any], ...] = ({"analyzer": "word", "ngram_range": (1, 2)},)


def lexical_text(article: HasText) -> str:
    """What the lexical head reads: title and body, folded (diacritics, alef/yaa/taa marbuta variants)."""
    return normalize(f"{article.title or ''} {article.text}", FOLD_ALL)


def make_vectorizers(specs: Sequence[dict[str, Any]] = VECTORIZERS, min_df: int = 2) -> list[TfidfVectorizer]:
    """Unfitted TF-IDF vectorisers, one per spec (`analyzer`, `ngram_range`), counting terms in at least `min_df`
    documents, log-scaled (a word said ten times is not ten times the evidence). The TF-IDF + LR baselines of
    `bench/quality.py` are built by this too, with character n-grams as well."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return [TfidfVectorizer(**spec, min_df=min_df, sublinear_tf=True) for spec in specs]


def featurize(vectorizers: Sequence[TfidfVectorizer], texts: Sequence[str]) -> sparse.csr_matrix:
    """The fitted vectorisers' features side by side, (n, F)."""
    return sparse.hstack([v.transform(texts) for v in vectorizers]).tocsr()


def rule_columns(articles: Sequence[HasText], names: Sequence[str]) -> sparse.csr_matrix:
    """One 0/1 column per labelling function in `names` (`naba.models.rules.rule_features`), (n, len(names))."""
    return sparse.csr_matrix(
        np.array([rule_features(a.text, a.title, names) for a in articles]).reshape(-1, len(names))
    )


@dataclass
class LexicalHead:
    """Fitted vectorisers and a linear map from their features to one logit per label.

    Attributes:
        labels: the labels, in the order of `weights`' rows; the model's labels.
        vectorizers: fitted, with a fixed vocabulary.
        rule_features: labelling functions whose 0/1 features follow the n-gram columns, in order.
        weights: (K, F) float32, F = n-gram columns + rule features.
        bias: (K,) float32.
    """

    labels: list[str]
    vectorizers: list[TfidfVectorizer]
    rule_features: list[str]
    weights: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        # `vocabulary_` is set by fitting, or by assigning `idf_` (`load`).
        n_features = sum(len(v.vocabulary_) for v in self.vectorizers) + len(self.rule_features)
        if self.weights.shape != (len(self.labels), n_features) or self.bias.shape != (len(self.labels),):
            raise ArtifactError(
                f"lexical head weights {self.weights.shape} and bias {self.bias.shape} do not fit "
                f"{len(self.labels)} labels and {n_features} features"
            )

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[1])

    def logits(self, articles: Sequence[HasText], rules: np.ndarray | None = None) -> np.ndarray:
        """(n, K) logits to add to the network's article logits.

        Args:
            rules: the articles' rule features in `rule_features` order, (n, R), when the caller has them
                already (a model whose network reads the same ones): the rules are not run twice.
        """
        return np.asarray(self.features(articles, rules) @ self.weights.T, dtype=np.float32) + self.bias

    def features(self, articles: Sequence[HasText], rules: np.ndarray | None = None) -> sparse.csr_matrix:
        """(n, F): the n-gram columns, then the rule features (`rules`, or computed here)."""
        ngrams = featurize(self.vectorizers, [lexical_text(a) for a in articles])
        if rules is None:
            columns = rule_columns(articles, self.rule_features)
        elif rules.shape == (len(articles), len(self.rule_features)):
            columns = sparse.csr_matrix(rules)
        else:
            raise ValueError(
                f"rules of shape {rules.shape} for {len(articles)} articles, {len(self.rule_features)} rules"
            )
        return sparse.hstack([ngrams, columns]).tocsr()

    def save(self, directory: Path) -> None:
        """Write `LEXICAL_CONFIG` and `LEXICAL_WEIGHTS` into `directory` (an artifact being written)."""
        config = {
            "format": FORMAT_VERSION,
            "labels": self.labels,
            "rule_features": self.rule_features,
            "rules_version": RULES_VERSION,
            "vectorizers": [
                {
                    "analyzer": v.analyzer,
                    "ngram_range": list(v.ngram_range),
                    # Column order: the term of column i is vocabulary[i].
                    "vocabulary": sorted(v.vocabulary_, key=v.vocabulary_.__getitem__),
                }
                for v in self.vectorizers
            ],
        }
        (directory / LEXICAL_CONFIG).write_text(json.dumps(config, ensure_ascii=False), "utf-8")
        tensors = {f"idf_{i}": v.idf_ for i, v in enumerate(self.vectorizers)}
        tensors.update(weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32))
        save_file(tensors, str(directory / LEXICAL_WEIGHTS))

    @classmethod
    def load(cls, directory: Path, labels: Sequence[str]) -> LexicalHead:
        """Read the head an artifact holds (its checksums already verified).

        Raises:
            ArtifactError: a file is missing, of another format, or for other labels than the model's, or it
                reads a labelling function this version of the rules lacks.
        """
        try:
            config = json.loads((directory / LEXICAL_CONFIG).read_text("utf-8"))
            tensors = load_file(str(directory / LEXICAL_WEIGHTS))
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory} has no readable lexical head: {exc}") from exc
        if config.get("format") != FORMAT_VERSION:
            raise ArtifactError(
                f"{directory / LEXICAL_CONFIG} is format {config.get('format')}, not {FORMAT_VERSION}"
            )
        if config["labels"] != list(labels):
            raise ArtifactError(f"lexical head for labels {config['labels']}; the model has {list(labels)}")
        if unknown := unknown_rule_features(config["rule_features"]):
            raise ArtifactError(
                f"the lexical head reads labelling functions this Naba lacks: {unknown} (rules version "
                f"{config['rules_version']}, this Naba has {RULES_VERSION}); retrain the model"
            )
        if missing := {"weights", "bias"} - tensors.keys():
            raise ArtifactError(f"{directory / LEXICAL_WEIGHTS} lacks {sorted(missing)}")
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizers = []
        for i, spec in enumerate(config["vectorizers"]):
            vocabulary = {term: column for column, term in enumerate(spec["vocabulary"])}
            vectorizer = TfidfVectorizer(
                analyzer=spec["analyzer"],
                ngram_range=tuple(spec["ngram_range"]),
                vocabulary=vocabulary,
                sublinear_tf=True,
            )
            try:
                vectorizer.idf_ = tensors[f"idf_{i}"]  # also sets `vocabulary_`: a fitted vectoriser, no text
            except (KeyError, ValueError) as exc:
                raise ArtifactError(
                    f"{directory / LEXICAL_WEIGHTS} does not fit its vocabulary: {exc}"
                ) from exc
            vectorizers.append(vectorizer)
        return cls(list(labels), vectorizers, config["rule_features"], tensors["weights"], tensors["bias"])
