"""The network: grouping windows by length changes the cost of a pass, never its result."""

from __future__ import annotations

import torch

from models.modeling import NabaModel
from models.predictor import Predictor


def test_length_groups_start_a_new_group_when_windows_get_much_shorter() -> None:
    lengths = torch.tensor([64, 20, 60, 64, 10, 50])
    groups = [g.tolist() for g in NabaModel.length_groups(lengths, slack=0.75)]
    assert groups == [[0, 3, 2, 5], [1], [4]]
    assert sorted(i for g in groups for i in g) == list(range(6))
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
