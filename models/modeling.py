"""The network: one pretrained encoder, three outputs from one forward pass.

```
windows ──encoder──► token states ──mean per sentence──► sentence vectors (B, S, H)
                                                           ├─ label head ──► sentence label logits (B, S, K)
                                                           │      └─ softmax-weighted pooling ─► article logits (B, K)
                                                           └─ + position ─► summary head ──► summary logits (B, S)
rule features (B, F) ──rule head──► added to the article logits (B, K)          (only with `--rule-features`)
```

Article tags are pooled from sentence-level label scores (multiple-instance learning), so the sentences that
drive a tag are the evidence for it, with no second model. Where the training data quotes the evidence for a
label, the sentence scores are also trained directly: quoted sentences are positives for their label, and
every sentence of an article without a label is a negative for it. The summary head scores each body sentence
BertSum-style, trained on oracle sentences picked by ROUGE against reference summaries.

A model may also read the annotation guide's rules (`naba.models.rules`): one 0/1 feature per labelling function,
did it fire in the article. A linear rule head maps them to a term added to the article logits. It starts at
zero, so fine-tuning starts from the text model and learns how much each rule is worth; sentence scores, and
so evidence, stay the text model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


@dataclass(frozen=True)
class HeadConfig:
    """Sizes of the heads on top of the encoder; saved in the artifact."""

    num_labels: int
    max_positions: int = 64  # sentence positions with their own embedding; later ones share the last
    dropout: float = 0.1
    summary_weight: float = 1.0  # weight of the summary loss against the tagging loss
    evidence_weight: float = 1.0  # weight of the sentence-level evidence loss
    # Labelling functions (`naba.models.rules`) whose 0/1 "fired in the article" features the rule head reads, in
    # input order; empty: no rule head. `rules_version` is the `RULES_VERSION` they were computed with.
    rule_features: tuple[str, ...] = ()
    rules_version: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule_features", tuple(self.rule_features))  # a JSON list becomes a tuple
        if len(set(self.rule_features)) != len(self.rule_features):
            raise ValueError(f"rule_features has duplicate names: {list(self.rule_features)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Encoder(Protocol):
    """What `NabaModel` reads token states from. Two implementations: a Hugging Face `PreTrainedModel` (torch,
    what training builds and `load_artifact` loads) and `naba.models.onnx_backend.OnnxEncoder` (the same
    weights exported, run by ONNX Runtime), which `Predictor.from_dir` puts in its place."""

    config: PretrainedConfig

    def __call__(self, *, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> BaseModelOutput: ...


def _token_states(encoder: Encoder, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H) last hidden states; every `Encoder` returns them (HF types the field as optional)."""
    states = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    assert states is not None
    return states


class NabaModel(nn.Module):
    """Encoder plus label and summary heads over sentence vectors."""

    def __init__(self, encoder: PreTrainedModel, heads: HeadConfig) -> None:
        super().__init__()
        self.encoder: Encoder = encoder
        self.heads = heads
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(heads.dropout)
        self.label_head = nn.Linear(hidden, heads.num_labels)
        self.position = nn.Embedding(heads.max_positions, hidden)
        self.summary_head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.position.weight)
        self.rule_head: nn.Linear | None = None
        if heads.rule_features:
            self.rule_head = self._zero_linear(len(heads.rule_features), heads.num_labels)

    @staticmethod
    def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
        """A linear layer that outputs zeros until trained: a new rule head leaves the text model's logits."""
        layer = nn.Linear(n_in, n_out)
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    @staticmethod
    def length_groups(
        lengths: torch.Tensor, max_padding: int = 32, max_group: int = 64
    ) -> list[torch.Tensor]:
        """Window indices grouped by similar length, longest first, so that each group pads little.

        A new group starts when a window is more than `max_padding` tokens shorter than its group's longest.
        On CPU a forward pass costs the same per window whatever the batch, so padding is pure waste; a bound in
        tokens (not a ratio) keeps long windows tight and still lets short ones, where the cost per call
        dominates, share a pass.
        """
        order = torch.argsort(lengths, descending=True, stable=True)
        groups: list[list[int]] = []
        longest = 0
        for i in order.tolist():
            length = int(lengths[i])
            if not groups or length < longest - max_padding or len(groups[-1]) >= max_group:
                groups.append([])
                longest = length
            groups[-1].append(i)
        return [torch.tensor(g, device=lengths.device) for g in groups]

    def encode_windows(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Encoder states `(W, L, H)`, with windows run in groups of similar length at inference.

        An article's last window is usually short, and padding it to the longest window of the batch costs as
        much as a full one. At inference each group is cut to its own longest window; positions beyond a
        window's length are zeros (no segment points at them). Training keeps one padded pass: identical maths,
        simpler autograd.
        """
        if self.training:
            return _token_states(self.encoder, input_ids, attention_mask)
        lengths = attention_mask.sum(dim=1)
        states: torch.Tensor | None = None
        for group in self.length_groups(lengths):
            width = int(lengths[group].max())
            mask = attention_mask[group, :width]
            part = _token_states(self.encoder, input_ids[group, :width], mask)
            part = part.masked_fill(~mask.bool().unsqueeze(-1), 0.0)  # (G, width, H), zeros past each window
            if states is None:
                states = part.new_zeros((*input_ids.shape, part.shape[-1]))
            states[group, :width] = part
        if states is None:
            raise ValueError("encode_windows needs at least one window")
        return states

    def sentence_vectors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_segment: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """Mean of the token states of each segment, over every window its tokens appear in: `(n_rows, H)`."""
        states = self.encode_windows(input_ids, attention_mask)  # (W, L, H)
        states = states.reshape(-1, states.shape[-1])  # (W*L, H)
        seg = token_segment.reshape(-1)
        keep = seg >= 0
        seg, states = seg[keep], states[keep]
        sums = states.new_zeros((n_rows, states.shape[-1])).index_add_(0, seg, states)
        counts = states.new_zeros(n_rows).index_add_(0, seg, torch.ones_like(seg, dtype=states.dtype))
        return sums / counts.clamp(min=1).unsqueeze(-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_segment: torch.Tensor,
        segment_mask: torch.Tensor,
        body_mask: torch.Tensor,
        position: torch.Tensor,
        labels: torch.Tensor | None = None,
        label_mask: torch.Tensor | None = None,
        summary_labels: torch.Tensor | None = None,
        summary_mask: torch.Tensor | None = None,
        evidence_labels: torch.Tensor | None = None,
        evidence_mask: torch.Tensor | None = None,
        rule_features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Score an encoded batch (see `naba.models.encoding.collate`); with targets, also return the loss.

        Args:
            labels: `(B, K)` multi-hot targets; `label_mask` `(B,)` marks the articles that have labels.
            summary_labels: `(B, S)` 1 for oracle summary sentences; `summary_mask` `(B,)` marks the articles
                that have a reference summary.
            evidence_labels: `(B, S, K)` sentence-level targets; `evidence_mask` `(B, S, K)` marks the cells
                that have one (quoted sentences of a gold label, all sentences of an absent label).
            rule_features: `(B, F)` 0/1 features in `heads.rule_features` order; required with a rule head,
                refused without one.
        """
        n_batch, n_seg = segment_mask.shape
        vectors = self.sentence_vectors(input_ids, attention_mask, token_segment, n_batch * n_seg)
        vectors = self.dropout(vectors.view(n_batch, n_seg, -1))  # (B, S, H)

        sentence_logits = self.label_head(vectors)  # (B, S, K)
        masked = sentence_logits.masked_fill(~segment_mask.unsqueeze(-1), float("-inf"))
        weights = torch.softmax(masked, dim=1).nan_to_num(0.0)  # (B, S, K); all-masked rows give 0
        doc_logits = (weights * sentence_logits).sum(dim=1)  # (B, K)
        doc_logits = doc_logits + self._rule_logits(rule_features, n_batch, doc_logits)

        summary_logits = self.summary_logits(vectors, position, body_mask)

        out = {"doc_logits": doc_logits, "sentence_logits": sentence_logits, "summary_logits": summary_logits}
        if labels is not None or summary_labels is not None:
            out["loss"] = self._loss(
                out,
                body_mask,
                labels,
                label_mask,
                summary_labels,
                summary_mask,
                evidence_labels,
                evidence_mask,
            )
        return out

    def summary_logits(
        self, vectors: torch.Tensor, position: torch.Tensor, body_mask: torch.Tensor
    ) -> torch.Tensor:
        """Summary scores `(B, S)` of sentence vectors `(B, S, H)` at their body positions; -1e4 off the body."""
        logits = self.summary_head(vectors + self.position(position)).squeeze(-1)  # (B, S)
        return logits.masked_fill(~body_mask, -1e4)

    def _rule_logits(
        self, rule_features: torch.Tensor | None, n_batch: int, doc_logits: torch.Tensor
    ) -> torch.Tensor | float:
        """The rule head's `(B, K)` term of the article logits, or 0.0 for a model without one."""
        if self.rule_head is None:
            if rule_features is not None:
                raise ValueError("rule_features were given, but this model has no rule head")
            return 0.0
        expected = (n_batch, len(self.heads.rule_features))
        if rule_features is None or tuple(rule_features.shape) != expected:
            got = None if rule_features is None else tuple(rule_features.shape)
            raise ValueError(f"this model reads rule features: rule_features must be {expected}, got {got}")
        return self.rule_head(rule_features.to(doc_logits.dtype))  # (B, K)

    def _loss(
        self,
        out: dict[str, torch.Tensor],
        body_mask: torch.Tensor,
        labels: torch.Tensor | None,
        label_mask: torch.Tensor | None,
        summary_labels: torch.Tensor | None,
        summary_mask: torch.Tensor | None,
        evidence_labels: torch.Tensor | None = None,
        evidence_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Tagging BCE over labelled articles, plus weighted summary BCE over articles with a reference, plus
        weighted sentence-level evidence BCE over the cells that have a target."""
        loss = out["doc_logits"].sum() * 0.0  # keeps the graph when a batch has neither kind of target
        if labels is not None and label_mask is not None and label_mask.any():
            loss = loss + F.binary_cross_entropy_with_logits(
                out["doc_logits"][label_mask], labels[label_mask]
            )
        if summary_labels is not None and summary_mask is not None and summary_mask.any():
            rows = body_mask & summary_mask.unsqueeze(-1)
            summary_loss = F.binary_cross_entropy_with_logits(
                out["summary_logits"][rows], summary_labels[rows]
            )
            loss = loss + self.heads.summary_weight * summary_loss
        if evidence_labels is not None and evidence_mask is not None and evidence_mask.any():
            evidence_loss = F.binary_cross_entropy_with_logits(
                out["sentence_logits"][evidence_mask], evidence_labels[evidence_mask]
            )
            loss = loss + self.heads.evidence_weight * evidence_loss
        return loss

    def grow_labels(self, old_labels: list[str], new_labels: list[str]) -> None:
        """Resize the label head (and the rule head) to `new_labels`, keeping the trained row of every label
        that stays. A new label's rule-head row starts at zero, like a new rule head."""
        self.label_head = self._grown(self.label_head, old_labels, new_labels)
        if self.rule_head is not None:
            self.rule_head = self._grown(self.rule_head, old_labels, new_labels, zero=True)
        self.heads = replace(self.heads, num_labels=len(new_labels))

    @staticmethod
    def _grown(old: nn.Linear, old_labels: list[str], new_labels: list[str], zero: bool = False) -> nn.Linear:
        """`old` with one output row per label of `new_labels`: the trained row of each label that stays."""
        n_in, n_out = old.in_features, len(new_labels)
        head = NabaModel._zero_linear(n_in, n_out) if zero else nn.Linear(n_in, n_out)
        head = head.to(old.weight.device, old.weight.dtype)
        with torch.no_grad():
            for i, label in enumerate(new_labels):
                if label in old_labels:
                    j = old_labels.index(label)
                    head.weight[i] = old.weight[j]
                    head.bias[i] = old.bias[j]
        return head

    def set_rule_features(self, names: Sequence[str], rules_version: str | None) -> None:
        """Read the rule features `names` from now on, keeping the learnt column of every feature that stays;
        a new feature starts at zero weight. Empty `names` removes the rule head."""
        old_names, old = list(self.heads.rule_features), self.rule_head
        version = rules_version if names else None
        self.heads = replace(self.heads, rule_features=tuple(names), rules_version=version)
        if not names:
            self.rule_head = None
            return
        head = self._zero_linear(len(names), self.heads.num_labels)
        head = head.to(self.label_head.weight.device, self.label_head.weight.dtype)
        if old is not None:
            with torch.no_grad():
                head.bias.copy_(old.bias)
                for i, name in enumerate(names):
                    if name in old_names:
                        head.weight[:, i] = old.weight[:, old_names.index(name)]
        self.rule_head = head
