"""Generators, iterators and npnet.utils.PyDataset in fit, evaluate and predict, with
Keras' steps_per_epoch, validation_steps, validation_batch_size and validation_freq."""

import time
import warnings

import numpy as np
import pytest

import npnet

RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 3)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int64)
SW = np.linspace(0.5, 2.0, 12)


def _model():
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _batches(x, y=None, sw=None, size=4, form="tuple"):
    for lo in range(0, len(x), size):
        rows = slice(lo, lo + size)
        if form == "x":
            yield x[rows]
        elif sw is not None:
            yield x[rows], y[rows], sw[rows]
        elif y is None:
            yield (x[rows],)
        else:
            yield x[rows], y[rows]


class Batches(npnet.utils.PyDataset):
    def __init__(self, x, y, size=4, sw=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.size, self.sw = x, y, size, sw
        self.calls, self.epoch_ends, self.epoch_begins = [], 0, 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, index):
        self.calls.append(index)
        rows = slice(index * self.size, (index + 1) * self.size)
        if self.sw is not None:
            return self.x[rows], self.y[rows], self.sw[rows]
        return self.x[rows], self.y[rows]

    def on_epoch_begin(self):
        self.epoch_begins += 1

    def on_epoch_end(self):
        self.epoch_ends += 1


class Endless(npnet.utils.PyDataset):
    def __getitem__(self, index):
        rows = slice(4 * (index % 3), 4 * (index % 3) + 4)
        return X[rows], Y[rows]


class Count(npnet.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.train, self.test = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.train.append(0)

    def on_train_batch_begin(self, batch, logs=None):
        self.train[-1] += 1

    def on_test_begin(self, logs=None):
        self.test.append(0)

    def on_test_batch_begin(self, batch, logs=None):
        self.test[-1] += 1


def _same_weights(a, b):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_a_generator_trains_exactly_like_the_arrays():
    arrays, gen = _model(), _model()
    ha = arrays.fit(X, Y, batch_size=4, shuffle=False, verbose=0, seed=0)
    hg = gen.fit(_batches(X, Y), verbose=0, seed=0, batch_size=999)  # batch_size is ignored, as in Keras
    assert ha.history == hg.history
    _same_weights(arrays, gen)


def test_generator_sample_weights_match_array_sample_weights():
    arrays, gen = _model(), _model()
    ha = arrays.fit(X, Y, sample_weight=SW, batch_size=4, shuffle=False, verbose=0)
    hg = gen.fit(_batches(X, Y, SW), verbose=0)
    assert ha.history == hg.history
    _same_weights(arrays, gen)


def test_an_iterator_is_a_data_source_too():
    model = _model()
    h = model.fit(iter(list(_batches(X, Y))), verbose=0)
    assert len(h.history["loss"]) == 1


def test_a_generator_without_steps_trains_one_epoch_then_stops_with_a_warning():
    count = Count()
    with pytest.warns(UserWarning, match=r"fit: `x` \(a generator\) has no batches left, so training stops before epoch 2"):
        h = _model().fit(_batches(X, Y), epochs=3, verbose=0, callbacks=[count])
    assert count.train == [3]
    assert len(h.history["loss"]) == 1


def test_steps_per_epoch_reads_a_generator_across_epochs():
    def forever():
        while True:
            yield from _batches(X, Y)

    count = Count()
    h = _model().fit(forever(), epochs=4, steps_per_epoch=2, verbose=0, callbacks=[count])
    assert count.train == [2, 2, 2, 2]
    assert len(h.history["loss"]) == 4


def test_a_generator_that_runs_out_ends_the_epoch_and_training():
    count = Count()
    with pytest.warns(UserWarning) as caught:
        _model().fit(_batches(X, Y), epochs=3, steps_per_epoch=2, verbose=0, callbacks=[count])
    assert count.train == [2, 1]
    assert [str(w.message)[:60] for w in caught] == [
        "fit: `x` ran out of batches before the 2 steps of this epoch",
        "fit: `x` (a generator) has no batches left, so training stop"]


def test_pydataset_runs_its_batches_and_epoch_hooks():
    data = Batches(X, Y, workers=3, use_multiprocessing=True, max_queue_size=2)
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (3, True, 2)
    model = _model()
    h = model.fit(data, epochs=3, shuffle=False, verbose=0)
    assert len(h.history["loss"]) == 3
    assert data.calls == [0] + [0, 1, 2] * 3  # batch 0 is read once first, to build the model
    assert data.epoch_begins == data.epoch_ends == 3
    arrays = _model()
    arrays.fit(X, Y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    _same_weights(model, arrays)


def test_pydataset_batch_order_is_shuffled_from_the_seed():
    orders = []
    for seed in (0, 0, 1):
        data = Batches(X, Y, size=1)
        _model().fit(data, epochs=2, verbose=0, seed=seed)
        calls = data.calls[1:]
        assert sorted(calls[:12]) == list(range(12)) and sorted(calls[12:]) == list(range(12))
        orders.append(calls)
    assert orders[0] == orders[1]
    assert orders[0] != orders[2]
    assert orders[0][:12] != list(range(12))
    assert orders[0][:12] != orders[0][12:]


def test_pydataset_with_class_weight_and_sample_weight():
    model, arrays = _model(), _model()
    model.fit(Batches(X, Y), class_weight={1: 3.0}, shuffle=False, verbose=0)
    arrays.fit(X, Y, class_weight={1: 3.0}, shuffle=False, batch_size=4, verbose=0)
    _same_weights(model, arrays)
    with pytest.raises(ValueError, match=r"fit: give `class_weight` or sample weights in the batches of `x`, not both"):
        _model().fit(Batches(X, Y, sw=SW), class_weight={1: 3.0}, verbose=0)


def test_steps_per_epoch_continues_a_pydataset_as_keras_does():
    # 3 batches per pass, 2 steps per epoch: the second epoch ends with the pass.
    data = Batches(X, Y)
    count = Count()
    with pytest.warns(UserWarning, match="ran out of batches before the 2 steps"):
        _model().fit(data, epochs=3, steps_per_epoch=2, shuffle=False, verbose=0, callbacks=[count])
    assert count.train == [2, 1, 2]
    assert data.calls == [0, 0, 1, 2, 0, 1]


def test_steps_per_epoch_with_arrays():
    count = Count()
    with pytest.warns(UserWarning, match="ran out of batches"):
        _model().fit(X, Y, batch_size=2, epochs=3, steps_per_epoch=4, verbose=0, callbacks=[count])
    assert count.train == [4, 2, 4]  # 6 batches a pass
    count = Count()
    _model().fit(X, Y, epochs=1, steps_per_epoch=3, verbose=0, callbacks=[count])  # batch_size = ceil(12 / 3)
    assert count.train == [3]


def test_an_endless_pydataset_needs_steps():
    h = _model().fit(Endless(), epochs=2, steps_per_epoch=5, verbose=0)
    assert len(h.history["loss"]) == 2
    with pytest.raises(ValueError, match=r"fit: `x` is an endless PyDataset \(no __len__\); give `steps_per_epoch`"):
        _model().fit(Endless(), verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: `x` is an endless PyDataset \(no __len__\); give `steps`"):
        _model().evaluate(Endless(), verbose=0)
    assert len(_model().predict(Endless(), steps=2, verbose=0)) == 8


def test_evaluate_and_predict_on_data_sources_match_arrays():
    model = _model()
    model.fit(X, Y, verbose=0, seed=0)
    expected = model.evaluate(X, Y, batch_size=4, sample_weight=SW, verbose=0)
    assert model.evaluate(_batches(X, Y, SW), verbose=0) == expected
    assert model.evaluate(Batches(X, Y, sw=SW), verbose=0) == expected
    assert model.evaluate(Batches(X, Y), steps=2, verbose=0) == model.evaluate(X[:8], Y[:8], batch_size=4, verbose=0)
    p = model.predict(X, verbose=0)
    for form in ("x", "tuple"):
        np.testing.assert_array_equal(model.predict(_batches(X, form=form), verbose=0), p)
    np.testing.assert_array_equal(model.predict(_batches(X, Y), verbose=0), p)  # (x, y): y is ignored
    np.testing.assert_array_equal(model.predict(Batches(X, Y), verbose=0), p)
    np.testing.assert_array_equal(model.predict(Batches(X, Y), steps=1, verbose=0), p[:4])


def test_validation_data_as_a_data_source():
    count = Count()
    model = _model()
    h = model.fit(X, Y, epochs=2, validation_data=Batches(X, Y), verbose=0, callbacks=[count])
    assert count.test == [3, 3]
    assert h.history["val_loss"][1] == pytest.approx(model.evaluate(X, Y, verbose=0)[0])

    def forever():
        while True:
            yield from _batches(X, Y)

    count = Count()
    _model().fit(X, Y, epochs=3, validation_data=forever(), validation_steps=2, verbose=0, callbacks=[count])
    assert count.test == [2, 2, 2]
    with pytest.raises(ValueError, match=r"fit: a generator in `validation_data` can be read once, but 2 epochs validate"):
        _model().fit(X, Y, epochs=2, validation_data=_batches(X, Y), verbose=0)
    h = _model().fit(X, Y, epochs=1, validation_data=_batches(X, Y), verbose=0)  # one pass: fine
    assert "val_loss" in h.history


def test_validation_batch_size_steps_and_freq():
    count = Count()
    h = _model().fit(X, Y, epochs=4, batch_size=6, validation_data=(X, Y), validation_batch_size=5,
                     validation_freq=2, verbose=0, callbacks=[count])
    assert count.train == [2, 2, 2, 2]
    assert count.test == [3, 3]  # after epochs 2 and 4, batches of 5, 5 and 2
    assert len(h.history["val_loss"]) == 2 and len(h.history["loss"]) == 4
    count = Count()
    h = _model().fit(X, Y, epochs=4, validation_data=(X, Y), validation_steps=1, validation_freq=[1, 4],
                     verbose=0, callbacks=[count])
    assert count.test == [1, 1]
    assert len(h.history["val_accuracy"]) == 2


@pytest.mark.parametrize("freq, error, match", [
    (0, ValueError, r"fit: `validation_freq` must be >= 1, received 0"),
    ([1, "2"], TypeError, r"fit: `validation_freq` must be an integer"),
    (1.5, TypeError, r"fit: `validation_freq` must be an int or a list of epochs"),
])
def test_bad_validation_freq(freq, error, match):
    with pytest.raises(error, match=match):
        _model().fit(X, Y, validation_data=(X, Y), validation_freq=freq, verbose=0)


def test_bad_steps_arguments():
    with pytest.raises(ValueError, match=r"fit: `steps_per_epoch` must be >= 1, received 0"):
        _model().fit(X, Y, steps_per_epoch=0, verbose=0)
    with pytest.raises(TypeError, match=r"fit: `validation_steps` must be an integer"):
        _model().fit(X, Y, validation_steps=1.5, verbose=0)
    with pytest.raises(ValueError, match=r"predict: `steps` must be >= 1"):
        _model().predict(X, steps=-1, verbose=0)


def test_arguments_that_data_sources_refuse():
    with pytest.raises(ValueError, match=r"fit: when `x` is a generator, `y` must not be given"):
        _model().fit(_batches(X, Y), Y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: when `x` is a PyDataset, `sample_weight` must not be given"):
        _model().fit(Batches(X, Y), sample_weight=SW, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_split` needs arrays"):
        _model().fit(Batches(X, Y), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `class_weight` is not supported with a generator"):
        _model().fit(_batches(X, Y), class_weight={0: 1.0}, verbose=0)
    with pytest.raises(ValueError, match=r"fit: `validation_data` must be a tuple \(x_val, y_val\) or .* received tuple of 1 items"):
        _model().fit(X, Y, validation_data=(X,), verbose=0)


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match=r"fit: the batches of `x` \(a generator\) must be \(x, y\) or .*; the first one has no targets"):
        _model().fit(_batches(X, form="x"), verbose=0)
    with pytest.raises(ValueError, match=r"fit: each batch of `x` must be x, \(x,\), \(x, y\) or .*; received a tuple of 4 items"):
        _model().fit(iter([(X, Y, SW, SW)]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: `x` \(a list_iterator\) yielded no batches"):
        _model().fit(iter([]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: `sample_weight` must have one weight per sample"):
        _model().fit(iter([(X, Y, SW[:3])]), verbose=0)

    def second_bad():
        yield X[:4], Y[:4]
        yield X[4:8], None

    with pytest.raises(ValueError, match=r"fit: each batch of `x` must be \(x, y\) or .*; received one without targets"):
        _model().fit(second_bad(), verbose=0)


class LooksLikeADataset:
    """A Keras-style data set class that does not inherit npnet.utils.PyDataset."""

    def __init__(self):
        self.reads = 0

    def __len__(self):
        return 10**9

    def __getitem__(self, index):
        self.reads += 1
        return np.zeros((32, 3)), np.zeros(32)


@pytest.mark.parametrize("call", [
    lambda m, d: m.fit(d, verbose=0),
    lambda m, d: m.fit(d, Y, verbose=0),
    lambda m, d: m.evaluate(d, Y, verbose=0),
    lambda m, d: m.predict(d, verbose=0),
    lambda m, d: m.train_on_batch(d, Y),
])
def test_an_object_that_is_not_an_array_is_refused_at_once(call):
    data = LooksLikeADataset()
    start = time.perf_counter()
    with pytest.raises(TypeError, match=r"`x` must be an array, a list or dict of arrays, a generator of batches or an "
                                        r"npnet.utils.PyDataset; received an object of type LooksLikeADataset\. It has "
                                        r"__len__ and __getitem__.*inherit npnet.utils.PyDataset"):
        call(_model(), data)
    assert data.reads == 0
    assert time.perf_counter() - start < 5  # never walked element by element (a loose bound; reads == 0 is the check)


def test_an_object_as_targets_is_refused_naming_y():
    with pytest.raises(TypeError, match=r"fit: `y` must be an array.*received an object of type LooksLikeADataset"):
        _model().fit(X, LooksLikeADataset(), verbose=0)


def test_pydataset_arguments_are_checked():
    with pytest.raises(TypeError, match=r"Batches: `workers` must be an integer"):
        Batches(X, Y, workers="4")
    with pytest.raises(TypeError, match=r"Batches: `use_multiprocessing` must be True or False"):
        Batches(X, Y, use_multiprocessing="yes")
    with pytest.raises(ValueError, match=r"Batches: `max_queue_size` must be >= 1"):
        Batches(X, Y, max_queue_size=0)

    class NoSuper(npnet.utils.PyDataset):
        def __init__(self):
            pass

        def __len__(self):
            return 1

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert NoSuper().workers == 1
    assert "should call super().__init__(**kwargs)" in str(caught[0].message)
    with pytest.raises(NotImplementedError, match="NoSuper: a PyDataset must define __getitem__"):
        NoSuper()[0]


def test_an_empty_pydataset_is_refused():
    with pytest.raises(ValueError, match=r"fit: `x` \(a Batches\) has no batches: its len\(\) is 0"):
        _model().fit(Batches(X[:0], Y[:0]), verbose=0)


class ValLog(npnet.callbacks.Callback):
    """The validation loss of every epoch, and the rows each validation batch held."""

    def __init__(self):
        super().__init__()
        self.val_loss = []

    def on_epoch_end(self, epoch, logs=None):
        self.val_loss.append(logs["val_loss"])


def _frozen():
    """A model that does not change in fit (learning rate 0), so validation numbers are fixed."""
    model = npnet.Sequential([npnet.Input(shape=(3,)), npnet.Dense(2, activation="softmax")], seed=0)
    model.compile(npnet.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    return model


def test_each_validation_pass_starts_at_the_first_batch_as_in_keras():
    # validation_steps=1 with batches of 4: every epoch validates on rows 0-3 (Keras resets its
    # evaluation iterator before each pass), not rows 0-3, then 4-7, then 8-11.
    model = _frozen()
    first_rows = model.evaluate(X[:4], Y[:4], verbose=0)
    h = model.fit(X, Y, epochs=3, verbose=0, validation_data=(X, Y), validation_batch_size=4, validation_steps=1)
    assert h.history["val_loss"] == [pytest.approx(first_rows)] * 3
    data = Batches(X, Y, size=4)  # 3 batches; validation_steps=2 reads batches 0 and 1 every time
    model.fit(X, Y, epochs=3, verbose=0, validation_data=data, validation_steps=2)
    assert data.calls == [0, 1] * 3


def test_validation_steps_without_a_batch_size_cover_the_validation_data():
    # Keras: validation_batch_size, else batch_size as given, else ceil(n_val / validation_steps).
    model = _frozen()
    whole = model.evaluate(X, Y, verbose=0)
    h = model.fit(X, Y, epochs=1, verbose=0, validation_data=(X, Y), validation_steps=1)
    assert h.history["val_loss"] == [pytest.approx(whole)]
    h = model.fit(X, Y, epochs=1, batch_size=4, verbose=0, validation_data=(X, Y), validation_steps=1)
    assert h.history["val_loss"] == [pytest.approx(model.evaluate(X[:4], Y[:4], verbose=0))]


def test_class_weight_does_not_weigh_the_validation_split():
    # As Keras: class weights apply to the training batches only.
    model = _frozen()
    plain = model.fit(X, Y, epochs=1, verbose=0, validation_split=0.25, seed=1).history
    weighted = model.fit(X, Y, epochs=1, verbose=0, validation_split=0.25, seed=1,
                         class_weight={0: 10.0, 1: 0.0}).history
    assert weighted["val_loss"] == plain["val_loss"]
    assert weighted["loss"] != pytest.approx(plain["loss"])


def test_an_endless_validation_pydataset_asks_for_validation_steps():
    with pytest.raises(ValueError, match=r"fit: `validation_data` is an endless PyDataset \(no __len__\); give "
                                         r"`validation_steps`"):
        _model().fit(Endless(), validation_data=Endless(), steps_per_epoch=2, verbose=0)


@pytest.mark.parametrize("call", [
    lambda m, d: m.fit(X, Y, sample_weight=d, verbose=0),
    lambda m, d: m.fit(X, Y, validation_data=(X, Y, d), verbose=0),
    lambda m, d: m.evaluate(X, Y, sample_weight=d, verbose=0),
    lambda m, d: m.train_on_batch(X, Y, sample_weight=d),
])
def test_an_object_as_sample_weight_is_refused_at_once(call):
    data = LooksLikeADataset()
    with pytest.raises(TypeError, match=r"`(validation_data\[2\]|sample_weight)` must be an array.*received an object "
                                        r"of type LooksLikeADataset"):
        call(_model(), data)
    assert data.reads == 0


def test_an_object_given_to_a_model_or_layer_is_refused_at_once():
    data = LooksLikeADataset()
    with pytest.raises(TypeError, match=r"`inputs` must be an array.*LooksLikeADataset"):
        _model()(data)
    with pytest.raises(TypeError, match=r"Dense '.*': `inputs` must be an array or a list of arrays; received an "
                                        r"object of type LooksLikeADataset"):
        npnet.layers.Dense(2)(data)
    assert data.reads == 0


def test_pydataset_settings_can_be_set_as_in_keras():
    data = Batches(X, Y)
    data.workers, data.use_multiprocessing, data.max_queue_size = 4, True, 3
    assert (data.workers, data.use_multiprocessing, data.max_queue_size) == (4, True, 3)
    with pytest.raises(ValueError, match=r"Batches: `max_queue_size` must be >= 1"):
        data.max_queue_size = 0
    with pytest.raises(TypeError, match=r"Batches: `use_multiprocessing` must be True or False"):
        data.use_multiprocessing = "yes"
