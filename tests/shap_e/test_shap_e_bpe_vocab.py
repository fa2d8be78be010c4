"""The generated CLIP-style tokenizer files."""

import json

import pytest
from transformers import CLIPTokenizer

from backend.test_models.shap_e.bpe_vocab import BOS, CLIP_VOCAB_SIZE, EOS, MODEL_MAX_LENGTH, make_vocab, write_tokenizer


@pytest.mark.parametrize("size", [1024, CLIP_VOCAB_SIZE])
def test_exact_size_and_valid_merges(size):
    vocab, merges = make_vocab(size)
    assert len(vocab) == size and sorted(vocab.values()) == list(range(size))
    assert vocab[BOS] == size - 2 and vocab[EOS] == size - 1  # CLIP's order: specials last
    for a, b in merges:
        assert a in vocab and b in vocab and a + b in vocab


def test_same_size_same_files(tmp_path):
    one, two = write_tokenizer(tmp_path / "one", 1024), write_tokenizer(tmp_path / "two", 1024)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        assert (one / name).read_bytes() == (two / name).read_bytes()


def test_clip_tokenizer_reads_them(tmp_path):
    tokenizer = CLIPTokenizer.from_pretrained(write_tokenizer(tmp_path, 1024))
    assert tokenizer.model_max_length == MODEL_MAX_LENGTH
    ids = tokenizer("A Red  Chair, ü 猫").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red chair , ü 猫"  # lower-cased, byte fallback
    assert len(tokenizer("a red chair").input_ids) == 5  # learned merges: one token per common word
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["tokenizer_class"] == "CLIPTokenizer"
