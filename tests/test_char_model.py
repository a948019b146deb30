"""examples/char_model.py: the split, the baselines, both models, saving, sampling, bad input."""

import json
import math
import pathlib
import runpy

import numpy as np
import pytest

import npnet
from npnet.testing import check_gradients

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "char_model.py"


@pytest.fixture(scope="module")
def cm():
    return runpy.run_path(str(EXAMPLE))


def test_split_is_by_position_without_overlap_and_covers_the_text(cm):
    text = cm["load_text"]()
    assert len(text) > 400_000  # the pydoc topics of any recent Python
    train, val, test = cm["split_text"](text)
    assert train + val + test == text  # consecutive, no overlap, nothing lost
    assert abs(len(test) - 0.1 * len(text)) <= 1 and abs(len(val) - 0.1 * len(text)) <= 1
    vocab = cm["Vocabulary"].fit(train)
    for part in (train, val, test):
        ids = vocab.encode(part)
        x, y = cm["make_windows"](ids, 100)
        # each window and its targets come from this part alone; every character from the
        # second on is a target once, up to a tail shorter than a window
        assert np.array_equal(x.ravel(), ids[: x.size]) and np.array_equal(y.ravel(), ids[1: x.size + 1])
        assert 0 <= len(part) - 1 - y.size < 100


def test_split_of_a_short_text_by_hand(cm):
    train, val, test = cm["split_text"]("abcdefghijklmnopqrst", val_fraction=0.2, test_fraction=0.1)
    assert (train, val, test) == ("abcdefghijklmn", "opqr", "st")


def test_vocabulary_keeps_id_zero_for_unknown_characters(cm):
    vocab = cm["Vocabulary"].fit("hello")
    assert vocab.chars == "ehlo" and len(vocab) == 5
    assert vocab.encode("hex!").tolist() == [2, 1, 0, 0]
    assert vocab.decode([3, 1, 4, 0]) == "leo\N{REPLACEMENT CHARACTER}"


def test_windows_shift_targets_by_one(cm):
    x, y = cm["make_windows"](np.arange(10), 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_baselines_match_hand_worked_values(cm):
    # training text "aab": ids a=1, b=2 and 0 for unknown, V = 3; targets "ba" after "ab"
    train = np.array([1, 1, 2])
    previous, targets = np.array([1, 2]), np.array([2, 1])
    # unigram: counts (0, 2, 1) of N = 3; p(b) = (1 + 1) / (3 + 3), p(a) = (2 + 1) / 6
    expected = -(math.log2(2 / 6) + math.log2(3 / 6)) / 2
    assert cm["unigram_bits"](train, targets, 3) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.2924813, rel=1e-7)
    # bigram: pairs (a, a) and (a, b); p(b | a) = (1 + 1) / (2 + 3), p(a | b) = (0 + 1) / (0 + 3)
    expected = -(math.log2(2 / 5) + math.log2(1 / 3)) / 2
    assert cm["bigram_bits"](train, previous, targets, 3) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.4534453, rel=1e-7)


def test_position_embedding_gradients_and_errors(cm):
    layer = cm["PositionEmbedding"](6, initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    assert check_gradients(layer, x).passed  # positions 4 and 5 get zero gradient
    x = x.astype("float32")
    assert np.array_equal(layer(x), x + layer.params["positions"][:4])
    with pytest.raises(ValueError, match=r"PositionEmbedding .*at most max_length=6 steps, received shape \(1, 7, 5\)"):
        layer(np.zeros((1, 7, 5), "float32"))
    with pytest.raises(ValueError, match="PositionEmbedding: `max_length` must be a positive int, received 0"):
        cm["PositionEmbedding"](0)
    rebuilt = cm["PositionEmbedding"].from_config(layer.get_config())
    assert rebuilt.max_length == 6


class _Uniform:
    """A model whose next-character probabilities are uniform over V."""

    def __init__(self, v):
        self.v = v

    def predict_on_batch(self, x):
        return np.full(x.shape + (self.v,), 1.0 / self.v, dtype="float32")


def test_model_bits_of_a_uniform_model_is_log2_v(cm):
    x = np.zeros((5, 7), np.int32)
    assert cm["model_bits"](_Uniform(8), x, x, batch_size=2) == pytest.approx(3.0, rel=1e-6)


@pytest.mark.parametrize("kind, floor", [("lstm", 0.5), ("transformer", 0.5)])
def test_quick_model_beats_the_unigram_baseline_and_reloads(cm, tmp_path, kind, floor, capsys):
    out = tmp_path / kind
    results = cm["main"](["--quick", "--model", kind, "--out", str(out), "--sample-length", "30", "--verbose", "0"])
    printed = capsys.readouterr().out
    assert "evaluated once" in printed and "sample (temperature 0.8, seed 0)" in printed
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["val"] == results["val"] and saved["model"] == kind
    unigram = results["baselines"]["unigram"]["val"]["bits_per_char"]
    bits = results["val"]["bits_per_char"]
    assert bits < unigram - floor, (bits, unigram)
    assert results["val"]["perplexity"] == pytest.approx(2 ** bits)
    assert results["sample"]["text"].startswith("The ") and len(results["sample"]["text"]) == 34

    model = npnet.load_model(str(out / "model.npnet"))
    vocab = cm["Vocabulary"](results["vocabulary"]["chars"])
    ids = vocab.encode(cm["split_text"](cm["load_text"]()[:60_000])[1])
    x, y = cm["make_windows"](ids, 32)
    assert cm["model_bits"](model, x, y) == pytest.approx(bits, rel=1e-6)
    # the same seed gives the same text, another seed another text
    a = cm["generate"](model, vocab, "The ", 40, seed=3, context=32)
    assert a == cm["generate"](model, vocab, "The ", 40, seed=3, context=32)
    assert a != cm["generate"](model, vocab, "The ", 40, seed=4, context=32)
    assert len(a) == 44


def test_generate_rejects_bad_arguments(cm):
    vocab = cm["Vocabulary"].fit("ab")
    with pytest.raises(ValueError, match="generate: `prompt` must be a non-empty string, received ''"):
        cm["generate"](_Uniform(3), vocab, "", 5)
    with pytest.raises(ValueError, match="generate: `temperature` must be > 0, received 0"):
        cm["generate"](_Uniform(3), vocab, "a", 5, temperature=0)


def test_split_and_windows_reject_bad_arguments(cm):
    with pytest.raises(ValueError, match=r"split_text: `test_fraction` must lie in \(0, 1\), received 1.5"):
        cm["split_text"]("x" * 100, test_fraction=1.5)
    with pytest.raises(ValueError, match="split_text: `val_fraction \\+ test_fraction` must be below 1"):
        cm["split_text"]("x" * 100, 0.5, 0.5)
    with pytest.raises(ValueError, match="split_text: a text of 5 characters is too short"):
        cm["split_text"]("abcde")
    with pytest.raises(ValueError, match="make_windows: a part of 4 characters holds no window of seq_len "
                                         r"\+ 1 = 5 characters"):
        cm["make_windows"](np.arange(4), 4)


@pytest.mark.parametrize("argv, message", [
    (["--model", "gru"], "argument --model: invalid choice: 'gru'"),
    (["--epochs", "0"], "argument --epochs: expected a positive integer, received 0"),
    (["--learning-rate", "-1"], "argument --learning-rate: expected a positive number, received -1"),
    (["--prompt", ""], "argument --prompt: expected a non-empty string"),
    (["--sample-length", "-2"], "argument --sample-length: expected a number >= 0, received -2"),
])
def test_bad_arguments_are_refused_by_the_parser(cm, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cm["parse_args"](argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "transformer", "--units", "8"], "error: --units does not apply to --model transformer"),
    (["--model", "lstm", "--heads", "2"], "error: --heads does not apply to --model lstm"),
    (["--model", "transformer", "--embed-dim", "30", "--heads", "4"],
     r"error: --embed-dim \(30\) must be a multiple of --heads \(4\)"),
    (["--seq-len", "200000"], "error: make_windows: a part of .* characters holds no window"),
])
def test_bad_combinations_stop_with_a_message(cm, tmp_path, argv, message):
    with pytest.raises(SystemExit, match=message):
        cm["main"](argv + ["--quick", "--out", str(tmp_path), "--verbose", "0"])
