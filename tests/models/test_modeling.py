"""The network: grouping windows by length changes the cost of a pass, never its result; the rule head."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from naba.models.encoding import EncodedArticle, collate
from naba.models.modeling import HeadConfig, NabaModel
from naba.models.predictor import Predictor


def test_length_groups_start_a_new_group_when_windows_get_much_shorter() -> None:
    lengths = torch.tensor([512, 200, 490, 512, 170, 470, 12])
    groups = [g.tolist() for g in NabaModel.length_groups(lengths, max_padding=32)]
    assert groups == [[0, 3, 2], [5], [1, 4], [6]]  # no window is padded by more than 32 tokens
    assert sorted(i for g in groups for i in g) == list(range(7))
    assert [len(g) for g in NabaModel.length_groups(torch.full((5,), 8), max_group=2)] == [2, 2, 1]


def test_grouped_windows_give_the_states_of_one_padded_pass(predictor: Predictor) -> None:
    model = predictor.model
    torch.manual_seed(0)
    lengths = torch.tensor([64, 12, 40, 64, 5])
    input_ids = torch.randint(5, len(predictor.tokenizer), (5, 64))
    attention_mask = (torch.arange(64) < lengths.unsqueeze(1)).long()
    with torch.inference_mode():
        grouped = model.encode_windows(input_ids, attention_mask)
        padded = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    real = attention_mask.bool()
    assert torch.allclose(grouped[real], padded[real], atol=1e-5)
    assert (grouped[~real] == 0).all()


def _tiny_model(labels: int, rule_features: tuple[str, ...] = ()) -> NabaModel:
    config = BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=16, max_position_embeddings=16)  # fmt: skip
    return NabaModel(BertModel(config), HeadConfig(num_labels=labels, rule_features=rule_features)).eval()


def _batch(features: list[float] | None) -> dict[str, torch.Tensor]:
    article = EncodedArticle(["a", "b"], 0, [[1, 5, 6, 2]], [[-1, 0, 1, -1]], features)
    return collate([article], pad_token_id=0, max_positions=8)


def test_a_rule_head_starts_at_zero_and_needs_its_features() -> None:
    torch.manual_seed(0)
    model = _tiny_model(2, ("at_suicide", "jo_exercise", "cc_joint_centre"))
    assert model.rule_head is not None and not model.rule_head.weight.any() and not model.rule_head.bias.any()
    with torch.inference_mode():
        out = model(**_batch([1.0, 0.0, 1.0]))
        weights = torch.softmax(out["sentence_logits"], dim=1)
        assert torch.allclose(out["doc_logits"], (weights * out["sentence_logits"]).sum(1))  # zero: text only
        with pytest.raises(ValueError, match=r"must be \(1, 3\), got None"):
            model(**_batch(None))
        with pytest.raises(ValueError, match=r"must be \(1, 3\), got \(1, 2\)"):
            model(**_batch([1.0, 0.0]))
        with pytest.raises(ValueError, match="no rule head"):
            _tiny_model(2)(**_batch([1.0, 0.0, 1.0]))


def test_grow_labels_keeps_the_rule_head_rows_of_old_labels() -> None:
    torch.manual_seed(0)
    model = _tiny_model(2, ("a", "b", "c"))
    assert model.rule_head is not None
    with torch.no_grad():
        model.rule_head.weight.normal_()
        model.rule_head.bias.normal_()
    old_rules, old_labels = model.rule_head.weight.clone(), model.label_head.weight.clone()

    model.grow_labels(["x", "y"], ["y", "z", "x"])
    assert model.rule_head is not None and model.heads.num_labels == 3
    assert torch.equal(model.rule_head.weight[0], old_rules[1]) and torch.equal(
        model.rule_head.weight[2], old_rules[0]
    )
    assert not model.rule_head.weight[1].any() and not model.rule_head.bias[1]  # a new label starts at zero
    assert torch.equal(model.label_head.weight[[0, 2]], old_labels[[1, 0]])
    assert model.heads.rule_features == ("a", "b", "c")


def test_set_rule_features_keeps_learnt_columns_and_adds_zero_ones() -> None:
    torch.manual_seed(0)
    model = _tiny_model(2, ("a", "b"))
    assert model.rule_head is not None
    with torch.no_grad():
        model.rule_head.weight.normal_()
    old = model.rule_head.weight.clone()

    model.set_rule_features(["b", "new", "a"], "2")
    assert model.heads.rule_features == ("b", "new", "a") and model.heads.rules_version == "2"
    assert torch.equal(model.rule_head.weight[:, [0, 2]], old[:, [1, 0]])
    assert not model.rule_head.weight[:, 1].any()
    model.set_rule_features([], "2")
    assert model.rule_head is None and model.heads.rules_version is None
