"""Ctrl-C during fit: the step under way finishes or is undone, workers stop, on_train_end runs.

Consistency is checked with a digest of everything a step changes (weights, moving
statistics, optimizer slots, step count): after an interruption the model's digest must
equal that of an uninterrupted run after the same number of steps. A half-applied
update matches neither the step before nor the step after.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import npnet
from npnet import layers as L


def digest(model):
    """Hash of the weights (trainable and not), the optimizer's slots and step count."""
    h = hashlib.blake2b(digest_size=16)
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    opt = model.optimizer
    for name in sorted(opt.slots):
        for a in opt.slots[name]:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(str(opt.iterations).encode())
    return h.hexdigest()


def make_model(units=700):
    # 600 x 700 kernel: 420,000 elements, so the optimizer updates it in two chunks on
    # two worker threads; BatchNormalization changes its moving statistics in forward.
    model = npnet.Sequential([npnet.Input((600,)), L.Dense(units), L.BatchNormalization(), L.ReLU(), L.Dense(8)],
                             seed=1)
    model.compile(npnet.optimizers.Adam(1e-3), "mse")
    return model


def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 600)).astype(np.float32), rng.normal(size=(64, 8)).astype(np.float32)


def reference_digests(steps, **fit_kwargs):
    """Digests of an uninterrupted run after 0, 1, ..., ``steps`` steps."""
    model = make_model()
    out = [digest(model)]

    class Record(npnet.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            out.append(digest(self.model))
            if len(out) > steps:
                self.model.stop_training = True

    if steps:
        x, y = data()
        model.fit(x, y, batch_size=16, epochs=10**6, seed=0, verbose=0, callbacks=[Record()], **fit_kwargs)
    return out


CHILD = r"""
import json, os, random, signal, sys, tempfile, threading, time
import numpy as np
import npnet
sys.path.insert(0, {tests!r})
from test_interrupts import data, digest, make_model

npnet.set_num_threads(2)
x, y = data()
folder = tempfile.mkdtemp()
random.seed(0)
# the time of a few steps on this machine, to spread the Ctrl-Cs over the first dozen steps
warm = make_model()
warm.fit(x, y, batch_size=16, epochs=1, verbose=0)
start = time.perf_counter()
warm.fit(x, y, batch_size=16, epochs=1, verbose=0)
max_delay = 3 * (time.perf_counter() - start)
trials = []
for trial in range({trials}):
    model = make_model()
    ended = []

    class Interrupt(npnet.callbacks.Callback):
        def on_train_begin(self, logs=None):
            # Ctrl-C at a random moment of this fit, from another thread as a terminal would.
            delay = random.uniform(0, max_delay)
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()

        def on_train_end(self, logs=None):
            ended.append(True)

    outcome = "returned"
    try:
        model.fit(x, y, batch_size=16, epochs=10**6, seed=0, verbose=0, callbacks=[Interrupt()])
    except KeyboardInterrupt:
        outcome = "KeyboardInterrupt"
    record = {{"outcome": outcome, "ended": bool(ended), "iterations": model.optimizer.iterations,
              "digest": digest(model)}}
    record["digest_again"] = digest(model)  # nothing writes the weights after fit has raised
    if trial % 4 == 0:
        path = os.path.join(folder, "m.npnet")
        model.save(path)
        loaded = npnet.load_model(path)
        record["loaded_digest"] = digest(loaded)
        model.train_on_batch(x[:16], y[:16])
        loaded.train_on_batch(x[:16], y[:16])
        record["trained_on"] = digest(loaded) == digest(model)
    trials.append(record)
print(json.dumps(trials))
"""


def run_child(trials):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    code = CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)), trials=trials)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sigint_during_fit_stops_at_a_step_boundary():
    trials = run_child(trials=16)
    reference = reference_digests(max(t["iterations"] for t in trials))
    for i, t in enumerate(trials):
        assert t["outcome"] == "KeyboardInterrupt", (i, t)  # as Keras: fit re-raises
        assert t["ended"], f"trial {i}: on_train_end did not run"
        assert t["digest"] == reference[t["iterations"]], (
            f"trial {i}: after {t['iterations']} optimizer steps the weights and slots differ from an "
            "uninterrupted run's after as many steps: a step was half applied")
        assert t["digest_again"] == t["digest"], f"trial {i}: the weights changed after fit raised"
        if "loaded_digest" in t:
            assert t["loaded_digest"] == t["digest"], f"trial {i}: the saved model differs from the model"
            assert t["trained_on"], f"trial {i}: the reloaded model trains differently"
    # the trials stopped at many different steps, not all before the first
    assert len({t["iterations"] for t in trials}) >= 4


def interrupt_at(model, step, param, chunk_start=None, exc=KeyboardInterrupt):
    """Make the optimizer raise ``exc`` during its update number ``step`` (1-based), in
    parameter ``param`` (after the parameters before it were updated), in the chunk
    starting at ``chunk_start`` when given."""
    opt = model.optimizer
    original = opt._apply

    def apply(i, p, g, span, lr):
        if opt.iterations + 1 == step and i == param and (chunk_start is None or span and span[0] == chunk_start):
            p[...] += 1.0  # half of the update is written...
            raise exc("interrupted inside the optimizer")  # ...when the interruption comes
        return original(i, p, g, span, lr)

    opt._apply = apply


@pytest.mark.parametrize("exc", [KeyboardInterrupt, FloatingPointError])
def test_an_interruption_inside_the_optimizer_undoes_the_step(exc):
    x, y = data()
    model = make_model()
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, seed=0, verbose=0, shuffle=False)  # slots exist
    reference = make_model()
    reference.fit(x[:16], y[:16], batch_size=16, epochs=2, seed=0, verbose=0, shuffle=False)
    interrupt_at(model, step=2, param=2, exc=exc)  # kernel and bias of the first Dense are updated already
    with pytest.raises(exc):
        model.fit(x[:16], y[:16], batch_size=16, epochs=1, seed=0, verbose=0, shuffle=False)
    assert model.optimizer.iterations == 1
    assert digest(model) == digest(make_model_after(1))
    # the model trains on from there as if nothing had happened
    model.optimizer._apply = type(model.optimizer)._apply.__get__(model.optimizer)
    model.fit(x[:16], y[:16], batch_size=16, epochs=1, seed=0, verbose=0, shuffle=False)
    assert digest(model) == digest(reference)


def make_model_after(steps):
    x, y = data()
    model = make_model()
    if steps:
        model.fit(x[:16], y[:16], batch_size=16, epochs=steps, seed=0, verbose=0, shuffle=False)
    return model


def test_an_interruption_in_the_first_step_leaves_a_fresh_optimizer():
    x, y = data()
    model = make_model()
    before = digest(model)
    interrupt_at(model, step=1, param=1)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.optimizer.iterations == 0 and model.optimizer.slots == {}
    assert digest(model) == before


def test_an_interruption_in_backward_restores_the_moving_statistics():
    x, y = data()
    model = make_model()
    before = digest(model)
    bn = model.layers[1]
    original = bn.backward

    def backward(cache, dy):  # the forward pass has moved the statistics already
        raise KeyboardInterrupt

    bn.backward = backward
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    bn.backward = original
    assert model.optimizer.iterations == 0
    assert digest(model) == before


def test_no_worker_writes_the_weights_after_the_interruption_reaches_the_caller():
    """One chunk of the kernel's update raises; the other chunk is slower. The slow one
    must have finished (and the step been undone after it) before fit raises."""
    before = npnet.get_num_threads()
    npnet.set_num_threads(2)
    try:
        x, y = data()
        model = make_model()
        model.fit(x[:16], y[:16], batch_size=16, epochs=1, seed=0, verbose=0, shuffle=False)
        opt = model.optimizer
        original = opt._apply
        raised, wrote = threading.Event(), threading.Event()
        events = []

        def apply(i, p, g, span, lr):
            if opt.iterations == 1 and i == 0 and span is not None:
                if span[0] > 0:
                    raised.set()
                    raise KeyboardInterrupt
                raised.wait(5)
                time.sleep(0.05)  # long after the other chunk raised
                original(i, p, g, span, lr)
                events.append("wrote")
                wrote.set()
                return None
            return original(i, p, g, span, lr)

        opt._apply = apply
        with pytest.raises(KeyboardInterrupt):
            model.fit(x[:16], y[:16], batch_size=16, epochs=1, seed=0, verbose=0, shuffle=False)
        events.append("caught")
        wrote.wait(5)
        assert events == ["wrote", "caught"]
        assert opt.iterations == 1
        assert digest(model) == digest(make_model_after(1))
    finally:
        npnet.set_num_threads(before)


def test_on_train_end_runs_and_keyboard_interrupt_goes_on(toy_data):
    x, y = toy_data
    model = npnet.Sequential([npnet.Input((4,)), L.Dense(3, activation="softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    calls = []

    class Stop(npnet.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise KeyboardInterrupt

        def on_train_end(self, logs=None):
            calls.append(("end", self.model.stop_training))

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[Stop()])
    assert calls == [("end", True)]
    assert model.optimizer.iterations == 3
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # fit works again
    assert model.optimizer.iterations == 3 + 10


def test_backup_is_kept_when_fit_is_interrupted(tmp_path, toy_data):
    x, y = toy_data
    backup = str(tmp_path / "backup")

    def model():
        m = npnet.Sequential([npnet.Input((4,)), L.Dense(3, activation="softmax")], seed=0)
        m.compile("sgd", "sparse_categorical_crossentropy")
        return m

    class Stop(npnet.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model().fit(x, y, epochs=4, verbose=0, seed=3, callbacks=[npnet.callbacks.BackupAndRestore(backup), Stop()])
    assert os.listdir(backup)
    resumed = model()
    history = resumed.fit(x, y, epochs=4, verbose=0, callbacks=[npnet.callbacks.BackupAndRestore(backup)])
    assert history.epoch == [2, 3]
    assert not os.path.exists(backup)
    uninterrupted = model()
    uninterrupted.fit(x, y, epochs=4, verbose=0, seed=3)
    for a, b in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_array_equal(a, b)
