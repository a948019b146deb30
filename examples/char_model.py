"""Character-level language models on the text of Python's own documentation.

The text ships with every Python: the standard library's ``pydoc_data.topics``, the
help pages that ``help("if")`` prints (about 465,000 characters of English and code for
Python 3.11), joined in sorted key order. A model reads a window of characters and
predicts, at every step, the next one.

    python examples/char_model.py                         # Embedding -> LSTM -> Dense softmax
    python examples/char_model.py --model transformer     # a small causal Transformer
    python examples/char_model.py --quick                 # a tiny model, one epoch, seconds

Models (``--model``):

- ``lstm``: Embedding(32) -> LSTM(256, return_sequences=True) -> Dense(vocabulary,
  softmax) at every step; windows of 100 characters.
- ``transformer``: Embedding(128) of the characters plus a learned position embedding
  (``PositionEmbedding`` below, a primitive layer with a hand-written backward), then two
  post-norm blocks of causal self-attention (4 heads, ``use_causal_mask=True``) + residual
  + LayerNormalization and a feed-forward network (Dense 512 relu, Dense 128) + residual +
  LayerNormalization, then Dense(vocabulary, softmax); windows of 128 characters.

Protocol. The text is split by position: the last 10% is the test part, the 10% before
it the validation part, the rest the training part. Windows are cut inside each part
(``x`` = characters ``iT .. iT+T-1``, targets shifted by one), so no window crosses a
boundary; each part's tail shorter than a window is left out. The vocabulary is the set
of characters of the training part, with id 0 for any other character (no padding id:
every window is full, so no mask is needed). Every choice (sizes, learning rate, window
length, epochs, early stopping on the validation loss) was made on the validation part;
the test part is evaluated once, after training. Each window starts without context, so
the first characters of a window are harder to predict: the figures are per character
over all targets of the part.

Figures: bits per character (mean cross-entropy in nats / ln 2) and perplexity
(2 ** bits) on validation and test, next to two baselines fitted on the training part
and scored on the same targets: add-one smoothed unigram character frequencies,
``p(c) = (n(c) + 1) / (N + V)``, and an add-one smoothed bigram model,
``p(c | a) = (n(a, c) + 1) / (n(a) + V)``. A sample of generated text follows
(temperature 0.8, ``np.random.default_rng(seed)``, from the prompt "The ").

Results of the default runs (seed 0, Python 3.11.7: 464,970 characters, 371,976 /
46,497 / 46,497 in train / validation / test, 103 characters + 1 unknown id), bits per
character (perplexity in brackets); the baselines are scored on each model's targets,
which differ only in the tails left out:

    =========================  ===============  ===============
    model                      validation       test
    =========================  ===============  ===============
    unigram (add-one)          4.646 (25.04)    4.676 (25.56)
    bigram (add-one)           3.549 (11.71)    3.365 (10.30)
    lstm, 326k weights         1.922 (3.79)     1.953 (3.87)
    transformer, 440k weights  1.955 (3.88)     1.994 (3.98)
    =========================  ===============  ===============

Each run takes 15 epochs (early stopping kept epoch 15 of the LSTM and 14 of the
Transformer): 2.8 and 3.8 minutes of CPU time with one BLAS thread
(``OPENBLAS_NUM_THREADS=1``); the wall time was 20 and 21 minutes on a machine shared by
several jobs at once.

The search was short, and on the validation part only. With windows of 100 and batches
of 64 (58 updates an epoch) the LSTM was still at the unigram figure after one epoch,
hence batches of 32. For 3 epochs on the first 150,000 characters, a rate of 1e-2 reached
3.95 bits and 3e-3 4.53; on the whole text, windows of 50 at 1e-2 reached 2.10 bits after
3 epochs. The recipe above (windows of 100 for more context, 5e-3, 15 cosine-decayed
epochs) was then run once: 1.92 bits, still falling slowly, with a small gap to the
training loss. The Transformer's recipe was run once too (1.97 bits at epoch 12 of 15).
Neither was tuned further; larger models and longer runs would do better.

The LSTM's sample, from "The ":

    The neacessed(lase.

    Changed its method is execution of the function of instance with the presireess
    variables unlear
    **PEP 42] * so bound in version 3.2:

Outputs in --out (default runs/char/<model>-seed<seed>): model.npnet (load it with
``npnet.load_model`` after defining or importing ``PositionEmbedding``, which this script
registers) and results.json (the split, the vocabulary, the recipe, the figures, the
sample, the training time).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

import npnet
from npnet.layers import InputSpec, Layer

UNKNOWN = "\N{REPLACEMENT CHARACTER}"  # how an unknown id is printed

# Recipes chosen on the validation part (seed 0), never on the test part; see the module
# docstring for the search. Adam with a cosine-decayed rate and the global gradient norm
# clipped at 5; early stopping on the validation loss restores the best epoch.
RECIPES = {
    "lstm": {"seq_len": 100, "batch_size": 32, "embed_dim": 32, "units": 256, "epochs": 15,
             "learning_rate": 5e-3, "patience": 3},
    "transformer": {"seq_len": 128, "batch_size": 32, "embed_dim": 128, "blocks": 2, "heads": 4,
                    "ff_dim": 512, "dropout": 0.0, "epochs": 15, "learning_rate": 2e-3, "patience": 3},
}
# --quick: a tiny model on the first 60,000 characters, for tests and a first look.
QUICK = {
    "lstm": {"seq_len": 32, "batch_size": 16, "embed_dim": 16, "units": 64, "epochs": 1,
             "learning_rate": 3e-2, "patience": 1, "max_chars": 60_000},
    "transformer": {"seq_len": 32, "batch_size": 16, "embed_dim": 32, "blocks": 1, "heads": 2,
                    "ff_dim": 64, "dropout": 0.0, "epochs": 1, "learning_rate": 1e-2, "patience": 1,
                    "max_chars": 60_000},
}


# ---------------------------------------------------------------------------- the text
def load_text() -> str:
    """The pydoc topics of this Python, joined in sorted key order (about 465 KB for 3.11)."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def split_text(text: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> tuple[str, str, str]:
    """Split by position: train, then validation, then the held-out tail as test.

    The three parts are consecutive and together are ``text``; windows are cut inside
    each part, so no window crosses a boundary.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ValueError(f"split_text: `{name}` must lie in (0, 1), received {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"split_text: `val_fraction + test_fraction` must be below 1, received "
                         f"{val_fraction} + {test_fraction}")
    n = len(text)
    test_start = n - int(round(n * test_fraction))
    val_start = test_start - int(round(n * val_fraction))
    if val_start < 2 or test_start - val_start < 2 or n - test_start < 2:
        raise ValueError(f"split_text: a text of {n} characters is too short to split into train, "
                         f"validation and test parts of at least 2 characters each")
    return text[:val_start], text[val_start:test_start], text[test_start:]


@dataclass(frozen=True)
class Vocabulary:
    """The characters of the training part, sorted; id 0 stands for any other character.

    No id is reserved for padding: every window is full, so no mask is needed.
    """

    chars: str

    @classmethod
    def fit(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> np.ndarray:
        table = {c: i + 1 for i, c in enumerate(self.chars)}
        return np.fromiter((table.get(c, 0) for c in text), dtype=np.int32, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 1] if i > 0 else UNKNOWN for i in np.asarray(ids).tolist())


def make_windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows: ``x[i] = ids[iT : iT + T]``, ``y[i] = ids[iT + 1 : iT + T + 1]``.

    Every character of the part from the second one is a target exactly once, except a
    tail shorter than a window (fewer than ``seq_len`` characters), which is left out.
    """
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise ValueError(f"make_windows: a part of {len(ids)} characters holds no window of "
                         f"seq_len + 1 = {seq_len + 1} characters; use a shorter --seq-len")
    x = ids[: n * seq_len].reshape(n, seq_len)
    y = ids[1: n * seq_len + 1].reshape(n, seq_len)
    return x, y


# ---------------------------------------------------------------------------- baselines
LN2 = math.log(2.0)


def unigram_bits(train_ids: np.ndarray, targets: np.ndarray, vocab_size: int) -> float:
    """Bits per character of add-one smoothed character frequencies of the training part.

    .. math:: p(c) = \\frac{n(c) + 1}{N + V}
    """
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64)
    logp = np.log(counts + 1) - np.log(counts.sum() + vocab_size)
    return float(-logp[np.ravel(targets)].mean() / LN2)


def bigram_bits(train_ids: np.ndarray, previous: np.ndarray, targets: np.ndarray, vocab_size: int) -> float:
    """Bits per character of an add-one smoothed bigram model of the training part.

    .. math:: p(c \\mid a) = \\frac{n(a, c) + 1}{n(a, \\cdot) + V}

    where :math:`n(a, c)` counts ``a`` followed by ``c`` in the training part.
    """
    pairs = np.bincount(train_ids[:-1].astype(np.int64) * vocab_size + train_ids[1:],
                        minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size).astype(np.float64)
    logp = np.log(pairs + 1) - np.log(pairs.sum(axis=1, keepdims=True) + vocab_size)
    return float(-logp[np.ravel(previous), np.ravel(targets)].mean() / LN2)


def model_bits(model: npnet.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float:
    """Mean cross-entropy of the model's next-character probabilities, in bits."""
    total, count = 0.0, 0
    for i in range(0, len(x), batch_size):
        p = model.predict_on_batch(x[i:i + batch_size])
        picked = np.take_along_axis(p, y[i:i + batch_size, :, None].astype(np.intp), axis=-1)
        total -= float(np.log(np.maximum(picked.astype(np.float64), 1e-300)).sum())
        count += picked.size
    return total / count / LN2


# ---------------------------------------------------------------------------- the models
@npnet.register_layer
class PositionEmbedding(Layer):
    r"""Add a learned vector for each position: :math:`y_{b,t} = x_{b,t} + P_t`.

    Shapes: ``x`` of shape ``(batch, T, d)`` with ``T <= max_length``, ``P`` of shape
    ``(max_length, d)``. The backward pass:

    .. math::
        \frac{\partial L}{\partial x} = \frac{\partial L}{\partial y}, \qquad
        \frac{\partial L}{\partial P_t} = \sum_b \frac{\partial L}{\partial y_{b,t}}
        \ (t < T), \quad 0 \ (t \ge T)
    """

    supports_masking = True

    def __init__(self, max_length: int, initializer="uniform", name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
            raise ValueError(f"PositionEmbedding: `max_length` must be a positive int, received {max_length!r}")
        self.max_length = int(max_length)
        self.initializer = initializer

    def build(self, input_shape):
        self.add_weight("positions", (self.max_length, input_shape[-1]), self.initializer)
        self.input_spec = InputSpec(ndim=3, axes={-1: input_shape[-1]}, layout="(batch, steps, features)")
        super().build(input_shape)

    def forward(self, x, training=False):
        x = self._enter(x)
        steps = x.shape[1]
        if steps > self.max_length:
            raise ValueError(f"{self._owner}: expected at most max_length={self.max_length} steps, "
                             f"received shape {x.shape}")
        return x + self.params["positions"][:steps], steps

    def backward(self, cache, dy):
        self._require_cache(cache)
        steps = cache
        grad = self.grads["positions"]
        grad.fill(0)
        np.sum(dy, axis=0, out=grad[:steps])
        return dy

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length, "initializer": self.initializer}


@npnet.onnx.register_converter(PositionEmbedding)
def _position_embedding_onnx(ctx, layer, inputs, outputs, options):
    """ONNX export of the layer (``model.export(path, format="onnx")``): the first ``steps``
    rows of the table, added to ``x``; ``steps`` is read from the input, so windows of any
    length up to ``max_length`` work."""
    steps = ctx.node("Gather", [ctx.node("Shape", inputs), ctx.const(np.asarray([1], np.int64), "axis1")], axis=0)
    first = ctx.const(np.asarray([0], np.int64), "zero")
    rows = ctx.node("Slice", [ctx.weight(layer, "positions", layer.params["positions"]), first, steps, first])
    return ctx.node("Add", [inputs[0], rows])


def build_model(kind: str, vocab_size: int, recipe: dict, seed: int) -> npnet.Model:
    """``lstm``: Embedding -> LSTM -> Dense softmax at every step; ``transformer``: token and
    position embeddings, then post-norm blocks of causal self-attention and a feed-forward
    network, then Dense softmax at every step."""
    from npnet import layers

    tokens = npnet.Input(shape=(None,), name="characters")
    if kind == "lstm":
        h = layers.Embedding(vocab_size, recipe["embed_dim"])(tokens)
        h = layers.LSTM(recipe["units"], return_sequences=True)(h)
    elif kind == "transformer":
        d = recipe["embed_dim"]
        if d % recipe["heads"]:
            raise ValueError(f"transformer: the embedding size {d} must be a multiple of the number of heads "
                             f"{recipe['heads']}")
        h = layers.Embedding(vocab_size, d)(tokens)
        h = PositionEmbedding(recipe["seq_len"])(h)
        for _ in range(recipe["blocks"]):
            a = layers.MultiHeadAttention(recipe["heads"], d // recipe["heads"], dropout=recipe["dropout"],
                                          seed=seed)(h, h, use_causal_mask=True)
            h = layers.LayerNormalization()(layers.Add()([h, a]))
            f = layers.Dense(recipe["ff_dim"], activation="relu")(h)
            f = layers.Dense(d)(f)
            h = layers.LayerNormalization()(layers.Add()([h, f]))
    else:
        raise ValueError(f"build_model: `kind` must be 'lstm' or 'transformer', received {kind!r}")
    probs = layers.Dense(vocab_size, activation="softmax", name="next_character")(h)
    return npnet.Model(tokens, probs, name=f"char_{kind}", seed=seed)


# ---------------------------------------------------------------------------- sampling
def generate(model: npnet.Model, vocab: Vocabulary, prompt: str, length: int, temperature: float = 0.8,
             seed: int = 0, context: int = 100) -> str:
    """Continue ``prompt`` by ``length`` characters drawn one at a time.

    Each character is drawn from the model's next-character probabilities raised to the
    power ``1 / temperature`` and renormalized, given the last ``context`` characters,
    with ``np.random.default_rng(seed)``: the same seed gives the same text.
    """
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"generate: `prompt` must be a non-empty string, received {prompt!r}")
    if not temperature > 0:
        raise ValueError(f"generate: `temperature` must be > 0, received {temperature!r}")
    rng = np.random.default_rng(seed)
    ids = list(vocab.encode(prompt))
    for _ in range(length):
        ctx = np.asarray(ids[-context:], dtype=np.int32)[None]
        p = model.predict_on_batch(ctx)[0, -1].astype(np.float64)
        logits = np.log(np.maximum(p, 1e-300)) / temperature
        p = np.exp(logits - logits.max())
        cdf = np.cumsum(p / p.sum())
        ids.append(int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1)))
    return prompt + vocab.decode(ids[len(prompt):])


# ---------------------------------------------------------------------------- the script
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, received {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Train a character-level language model on Python's pydoc topics "
                                            "and report bits per character on validation and test.")
    p.add_argument("--model", choices=["lstm", "transformer"], default="lstm")
    p.add_argument("--quick", action="store_true", help="a tiny model, one epoch, the first 60,000 characters")
    p.add_argument("--epochs", type=positive_int, default=None, help="maximum epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--learning-rate", type=positive_float, default=None)
    p.add_argument("--seq-len", type=positive_int, default=None, help="characters per training window")
    p.add_argument("--embed-dim", type=positive_int, default=None)
    p.add_argument("--units", type=positive_int, default=None, help="LSTM units")
    p.add_argument("--blocks", type=positive_int, default=None, help="Transformer blocks")
    p.add_argument("--heads", type=positive_int, default=None, help="attention heads")
    p.add_argument("--ff-dim", type=positive_int, default=None, help="feed-forward width of a block")
    p.add_argument("--patience", type=positive_int, default=None, help="early-stopping patience in epochs")
    p.add_argument("--max-chars", type=positive_int, default=None,
                   help="use only the first N characters of the text (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt", default="The ")
    p.add_argument("--sample-length", type=int, default=400)
    p.add_argument("--temperature", type=positive_float, default=0.8)
    p.add_argument("--out", default=None, help="output folder (default: runs/char/<model>-seed<seed>)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = p.parse_args(argv)
    if args.sample_length < 0:
        p.error(f"argument --sample-length: expected a number >= 0, received {args.sample_length}")
    if not args.prompt:
        p.error("argument --prompt: expected a non-empty string")
    return args


def resolve_recipe(args) -> dict:
    recipe = dict((QUICK if args.quick else RECIPES)[args.model])
    recipe.setdefault("max_chars", None)
    for key in ("epochs", "batch_size", "learning_rate", "seq_len", "embed_dim", "units", "blocks", "heads",
                "ff_dim", "patience", "max_chars"):
        value = getattr(args, key)
        if value is not None:
            if key not in recipe:
                sys.exit(f"error: --{key.replace('_', '-')} does not apply to --model {args.model}")
            recipe[key] = value
    if args.model == "transformer" and recipe["embed_dim"] % recipe["heads"]:
        sys.exit(f"error: --embed-dim ({recipe['embed_dim']}) must be a multiple of --heads ({recipe['heads']})")
    return recipe


def main(argv=None) -> dict:
    args = parse_args(argv)
    recipe = resolve_recipe(args)
    out = args.out or os.path.join("runs", "char", f"{args.model}-seed{args.seed}")
    os.makedirs(out, exist_ok=True)
    npnet.utils.set_random_seed(args.seed)

    text = load_text()
    if recipe["max_chars"]:
        text = text[: recipe["max_chars"]]
    train, val, test = split_text(text)
    vocab = Vocabulary.fit(train)
    T = recipe["seq_len"]
    ids = {name: vocab.encode(part) for name, part in (("train", train), ("val", val), ("test", test))}
    try:
        windows = {name: make_windows(part, T) for name, part in ids.items()}
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = windows["train"], windows["val"], windows["test"]
    print(f"pydoc topics of Python {platform.python_version()}: {len(text):,} characters; "
          f"train {len(train):,}, validation {len(val):,}, test {len(test):,} (by position)")
    print(f"vocabulary: {len(vocab.chars)} characters of the training part + 1 unknown id; "
          f"windows of {T}: {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test")

    model = build_model(args.model, len(vocab), recipe, args.seed)
    steps = -(-len(x_train) // recipe["batch_size"])
    schedule = npnet.schedules.CosineDecay(recipe["learning_rate"], decay_steps=recipe["epochs"] * steps)
    model.compile(optimizer=npnet.Adam(schedule, global_clipnorm=5.0), loss="sparse_categorical_crossentropy")
    if args.verbose:
        model.summary()
    stopper = npnet.callbacks.EarlyStopping(monitor="val_loss", patience=recipe["patience"],
                                            restore_best_weights=True)
    t0 = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=recipe["batch_size"], epochs=recipe["epochs"],
                        validation_data=(x_val, y_val), callbacks=[stopper], seed=args.seed,
                        verbose=args.verbose)
    train_seconds = time.perf_counter() - t0
    best_epoch = stopper.best_epoch

    V = len(vocab)
    baselines = {
        "unigram": {"val": unigram_bits(ids["train"], y_val, V)},
        "bigram": {"val": bigram_bits(ids["train"], x_val, y_val, V)},
    }
    val_bits = model_bits(model, x_val, y_val)
    # The one and only look at the test part.
    test_bits = model_bits(model, x_test, y_test)
    baselines["unigram"]["test"] = unigram_bits(ids["train"], y_test, V)
    baselines["bigram"]["test"] = bigram_bits(ids["train"], x_test, y_test, V)

    t1 = time.perf_counter()
    sample = generate(model, vocab, args.prompt, args.sample_length, args.temperature, seed=args.seed,
                      context=T) if args.sample_length else ""
    sample_seconds = time.perf_counter() - t1
    model.save(os.path.join(out, "model.npnet"))

    def figures(bits):
        return {"bits_per_char": bits, "perplexity": 2.0 ** bits}

    results = {
        "model": args.model, "seed": args.seed, "quick": args.quick, "recipe": recipe,
        "python": platform.python_version(), "text_chars": len(text),
        "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "split_chars": {"train": len(train), "val": len(val), "test": len(test)},
        "windows": {"train": len(x_train), "val": len(x_val), "test": len(x_test)},
        "vocabulary": {"chars": vocab.chars, "size": V, "unknown_id": 0},
        "params": model.count_params(), "epochs_run": len(history.epoch), "best_epoch": best_epoch + 1,
        "train_minutes": train_seconds / 60,
        "val": figures(val_bits), "test": figures(test_bits),
        "baselines": {name: {part: figures(b) for part, b in parts.items()} for name, parts in baselines.items()},
        "sample": {"prompt": args.prompt, "temperature": args.temperature, "seed": args.seed, "text": sample,
                   "seconds": sample_seconds},
    }
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)

    print(f"\n{'bits per character':<26}{'validation':>12}{'test':>10}   (perplexity val / test)")
    for name, val_b, test_b in (("unigram (add-one)", baselines["unigram"]["val"], baselines["unigram"]["test"]),
                                ("bigram (add-one)", baselines["bigram"]["val"], baselines["bigram"]["test"]),
                                (f"{args.model} (epoch {best_epoch + 1})", val_bits, test_bits)):
        print(f"{name:<26}{val_b:>12.3f}{test_b:>10.3f}   ({2 ** val_b:.2f} / {2 ** test_b:.2f})")
    took = f"{train_seconds:.1f} s" if train_seconds < 60 else f"{train_seconds / 60:.1f} min"
    print(f"training: {len(history.epoch)} epochs in {took}; the test part was evaluated once, after training")
    if sample:
        print(f"\nsample (temperature {args.temperature}, seed {args.seed}):\n{sample}")
    print(f"\noutputs in {out}")
    return results


if __name__ == "__main__":
    main()
