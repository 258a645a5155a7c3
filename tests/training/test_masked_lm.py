"""The masked-positions MLM head: the same loss, gradients and predictions as BertForMaskedLM, saved as one."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from naba.training.masked_lm import IGNORE, MaskedPositionsBertForMaskedLM, predicted_ids

CONFIG = BertConfig(
    vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=16, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)  # fmt: skip


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (3, 12), generator=generator)
    labels = torch.where(torch.rand(3, 12, generator=generator) < 0.3, ids, torch.full_like(ids, IGNORE))
    labels[0, 0] = ids[0, 0]  # at least one masked token
    return ids, labels


def twins() -> tuple[BertForMaskedLM, MaskedPositionsBertForMaskedLM]:
    torch.manual_seed(0)
    dense = BertForMaskedLM(CONFIG)
    sparse = MaskedPositionsBertForMaskedLM(CONFIG)
    sparse.load_state_dict(dense.state_dict())
    return dense, sparse


def test_loss_and_gradients_equal_the_dense_head() -> None:
    dense, sparse = twins()
    ids, labels = batch()
    dense_loss = dense(input_ids=ids, labels=labels).loss
    sparse_loss = sparse(input_ids=ids, labels=labels).loss
    assert torch.allclose(dense_loss, sparse_loss, atol=1e-6)
    dense_loss.backward()
    sparse_loss.backward()
    for (name, a), b in zip(dense.named_parameters(), sparse.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6), name


def test_logits_are_those_of_the_masked_positions_only() -> None:
    dense, sparse = twins()
    ids, labels = batch(1)
    masked = labels != IGNORE
    logits = sparse(input_ids=ids, labels=labels).logits
    assert logits.shape == (int(masked.sum()), CONFIG.vocab_size)
    assert torch.allclose(logits, dense(input_ids=ids).logits[masked], atol=1e-5)
    assert sparse(input_ids=ids).logits.shape == (3, 12, CONFIG.vocab_size)  # no labels: the dense forward


def test_loss_is_normalised_by_the_trainers_token_count() -> None:
    """Under gradient accumulation the Trainer passes the masked-token count of all micro-batches."""
    _, sparse = twins()
    ids, labels = batch(2)
    n = int((labels != IGNORE).sum())
    mean = sparse(input_ids=ids, labels=labels).loss
    assert torch.allclose(sparse(input_ids=ids, labels=labels, num_items_in_batch=2 * n).loss, mean / 2)


def test_predicted_ids_agree_for_dense_and_masked_logits() -> None:
    dense, sparse = twins()
    ids, labels = batch(3)
    with torch.no_grad():
        from_dense = predicted_ids(dense(input_ids=ids).logits, labels)
        from_sparse = predicted_ids(sparse(input_ids=ids, labels=labels).logits, labels)
    masked = labels != IGNORE
    assert torch.equal(from_dense[masked], from_sparse[masked])
    assert (from_sparse[~masked] == IGNORE).all()


def test_saved_as_a_plain_bert_masked_lm(tmp_path: Path) -> None:
    _, sparse = twins()
    sparse.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text("utf-8"))["architectures"] == ["BertForMaskedLM"]
    loaded = AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert type(loaded) is BertForMaskedLM
    assert torch.equal(
        loaded.bert.embeddings.word_embeddings.weight, sparse.bert.embeddings.word_embeddings.weight
    )
