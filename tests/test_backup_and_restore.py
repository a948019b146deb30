"""BackupAndRestore: a run killed at any batch, started again, ends with the weights of a run
that was never interrupted (bit for bit); the backup is atomic, deleted after success, and a
corrupt one is refused with a clear error."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import npnet
from npnet.callbacks import BackupAndRestore, Callback, LearningRateScheduler

SRC = os.path.dirname(os.path.dirname(npnet.__file__))

# The script a user would run: it trains with BackupAndRestore, and the first time it gets to
# (KILL_EPOCH, KILL_BATCH) it kills itself with SIGKILL, as an out-of-memory killer or a
# preempted machine would. Run again, it must finish the job.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import npnet

    backup, out, save_freq, kill_epoch, kill_batch, seed = sys.argv[1:7]
    save_freq = save_freq if save_freq == "epoch" else int(save_freq)
    kill_at = (int(kill_epoch), int(kill_batch))
    seed = None if seed == "none" else int(seed)
    marker = out + ".killed"

    class Killer(npnet.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if (self.epoch, batch) == kill_at and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)

    def augment(xb, rng):
        return xb + rng.normal(scale=0.1, size=xb.shape).astype(xb.dtype)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5).astype(int)
    model = npnet.Sequential([npnet.Input(shape=(6,)), npnet.Dense(16, activation="relu"), npnet.Dropout(0.3),
                              npnet.Dense(3, activation="softmax")], seed=0)
    model.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [] if backup == "none" else [npnet.callbacks.BackupAndRestore(backup, save_freq=save_freq)]
    model.fit(x, y, batch_size=16, epochs=6, validation_split=0.2, seed=seed, augment=augment,
              callbacks=callbacks + [Killer()], verbose=0)
    np.savez(out, iterations=model.optimizer.iterations, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
""")


def run_script(tmp_path, backup, out, save_freq="epoch", kill=(-1, -1), seed="7"):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(script), str(backup), str(out), str(save_freq), str(kill[0]),
                           str(kill[1]), seed], env=env, capture_output=True, text=True, timeout=300)


def load_result(path):
    with np.load(path) as data:
        return int(data["iterations"]), [data[f"w{i}"] for i in range(len(data.files) - 1)]


def assert_same_result(a, b):
    (it_a, w_a), (it_b, w_b) = a, b
    assert it_a == it_b
    assert len(w_a) == len(w_b)
    assert all(np.array_equal(p, q) for p, q in zip(w_a, w_b))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Final weights of the script run once, never killed, with seed 7."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "reference.npz"
    done = run_script(tmp, "none", out)
    assert done.returncode == 0, done.stderr
    return load_result(out)


@pytest.mark.parametrize("save_freq, kill, resumed_at", [
    ("epoch", (3, 1), {"epoch": 3, "step": 0}),  # killed in epoch 3: resumes at its start
    (3, (2, 3), {"epoch": 2, "step": 2}),  # every 3 batches of 5: last backup after batch 2 of epoch 2
])
def test_killed_run_resumes_bit_identical(tmp_path, uninterrupted, save_freq, kill, resumed_at):
    backup, out = tmp_path / "backup", tmp_path / "out.npz"
    killed = run_script(tmp_path, backup, out, save_freq, kill)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not out.exists()
    state = json.loads((backup / "training_state.json").read_text())
    assert {k: state["checkpoints"][0][k] for k in ("epoch", "step")} == resumed_at
    assert state["checkpoints"][0]["seed"] == 7
    assert state["checkpoints"][0]["steps"] == 5
    assert (state["checkpoints"][0]["rngs"] is None) == (resumed_at["step"] == 0)
    finished = run_script(tmp_path, backup, out, save_freq, kill)
    assert finished.returncode == 0, finished.stderr
    assert_same_result(load_result(out), uninterrupted)
    assert not backup.exists()  # deleted after a successful fit


def test_killed_run_without_a_seed_resumes_with_the_seed_it_drew(tmp_path):
    backup, out = tmp_path / "backup", tmp_path / "out.npz"
    killed = run_script(tmp_path, backup, out, 4, (4, 2), seed="none")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    state = json.loads((backup / "training_state.json").read_text())["checkpoints"][0]
    # Backups every 4 batches of 5: the one due after the last batch of epoch 3 is made when
    # that epoch is over (after validation and its callbacks), so the run resumes at epoch 4.
    assert (state["epoch"], state["step"]) == (4, 0)
    # The reference: a run never killed, given the seed the killed run drew.
    reference_out = tmp_path / "reference.npz"
    reference = run_script(tmp_path, "none", reference_out, seed=str(state["seed"]))
    assert reference.returncode == 0, reference.stderr
    finished = run_script(tmp_path, backup, out, 4, (4, 2), seed="none")
    assert finished.returncode == 0, finished.stderr
    assert_same_result(load_result(out), load_result(reference_out))


# ---------------------------------------------------------------------------- in process


class Crash(Callback):
    """Raise at the end of one batch: an interruption that leaves the process alive."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise KeyboardInterrupt


def make_model():
    model = npnet.Sequential([npnet.Input(shape=(4,)), npnet.Dense(8, activation="relu"), npnet.Dropout(0.25),
                              npnet.Dense(3, activation="softmax")], seed=1)
    model.compile(npnet.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, data, callbacks=(), **kwargs):
    x, y = data
    halve = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)  # reads the current rate
    options = dict(batch_size=32, epochs=5, seed=3, validation_split=0.2, verbose=0)
    options.update(kwargs)
    return model.fit(x, y, callbacks=[halve, *callbacks], **options)


@pytest.mark.parametrize("save_freq, crash", [("epoch", (2, 4)), (2, (1, 3)), (4, (3, 0)), (1, (0, 0))])
def test_interrupted_fit_resumes_exactly_in_process(tmp_path, toy_data, save_freq, crash):
    reference = make_model()
    fit(reference, toy_data)
    backup = tmp_path / "b"
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, toy_data, [BackupAndRestore(backup, save_freq=save_freq), Crash(*crash)])
    assert (backup / "training_state.json").exists()
    resumed = make_model()  # a fresh process would build a fresh model
    history = fit(resumed, toy_data, [BackupAndRestore(backup, save_freq=save_freq)])
    assert history.epoch[0] <= crash[0] and history.epoch[-1] == 4
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), reference.get_weights()))
    assert resumed.optimizer.iterations == reference.optimizer.iterations
    assert resumed.optimizer.learning_rate == reference.optimizer.learning_rate
    assert all(np.array_equal(a, b) for a, b in zip(resumed.optimizer.slots["velocity"],
                                                      reference.optimizer.slots["velocity"]))
    assert not backup.exists()


def test_resume_builds_an_unbuilt_model(tmp_path, toy_data):
    def unbuilt():
        model = npnet.Sequential([npnet.Dense(8, activation="relu"), npnet.Dense(3, activation="softmax")], seed=1)
        model.compile(npnet.Adam(0.01), "sparse_categorical_crossentropy")
        return model

    reference = unbuilt()
    fit(reference, toy_data)
    with pytest.raises(KeyboardInterrupt):
        fit(unbuilt(), toy_data, [BackupAndRestore(tmp_path / "b", save_freq=3), Crash(2, 1)])
    resumed = unbuilt()
    fit(resumed, toy_data, [BackupAndRestore(tmp_path / "b", save_freq=3)])
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), reference.get_weights()))


def test_backup_files_during_and_after_training(tmp_path, toy_data):
    backup = tmp_path / "deep" / "backup"
    seen = []

    class Look(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(sorted(os.listdir(backup)))

    model = make_model()
    fit(model, toy_data, [BackupAndRestore(backup), Look()], epochs=2)
    # one backup at a time: the previous generation is removed once the state file names the new one
    assert seen == [["optimizer-1.npz", "training_state.json", "weights-1.npnet"],
                    ["optimizer-2.npz", "training_state.json", "weights-2.npnet"]]
    assert not backup.exists() and backup.parent.exists()

    kept = BackupAndRestore(backup, delete_checkpoint=False)
    fit(make_model(), toy_data, [kept], epochs=2)
    assert sorted(os.listdir(backup)) == ["optimizer-2.npz", "training_state.json", "weights-2.npnet"]
    # The kept backup says training is over: a new fit with it has no epoch left to run.
    again = make_model()
    history = fit(again, toy_data, [kept], epochs=2)
    assert history.epoch == []
    assert again.optimizer.iterations == model.optimizer.iterations


def test_backup_dir_is_shared_with_other_files_safely(tmp_path, toy_data):
    backup = tmp_path / "b"
    backup.mkdir()
    (backup / "notes.txt").write_text("mine")
    fit(make_model(), toy_data, [BackupAndRestore(backup)], epochs=1)
    assert os.listdir(backup) == ["notes.txt"]  # only the callback's own files are deleted


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path, toy_data):
    reference = make_model()
    fit(reference, toy_data)
    backup = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), toy_data, [BackupAndRestore(backup, double_checkpoint=True), Crash(3, 0)])
    assert sorted(os.listdir(backup)) == ["optimizer-2.npz", "optimizer-3.npz", "training_state.json",
                                          "weights-2.npnet", "weights-3.npnet"]
    (backup / "weights-3.npnet").write_bytes(b"not a zip")
    resumed = make_model()
    with pytest.warns(RuntimeWarning, match=r"the latest backup in .* cannot be read .*restored the previous one"):
        history = fit(resumed, toy_data, [BackupAndRestore(backup, double_checkpoint=True)])
    assert history.epoch == [2, 3, 4]  # the previous backup was made after epoch index 1
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), reference.get_weights()))


@pytest.mark.parametrize("damage, message", [
    (lambda b: (b / "training_state.json").write_text("{not json"), "Expecting property name"),
    (lambda b: (b / "training_state.json").write_text('{"format": "other"}'), "is not a backup state file"),
    (lambda b: (b / "weights-2.npnet").write_bytes(b"\x00" * 50), "is not an npnet file"),
    (lambda b: (b / "optimizer-2.npz").unlink(), "No such file or directory"),
    (lambda b: (b / "optimizer-2.npz").write_bytes(b"PK\x03\x04junk"), "File is not a zip file|BadZipFile|zip"),
])
def test_corrupt_backup_is_refused_with_a_clear_error(tmp_path, toy_data, damage, message):
    backup = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), toy_data, [BackupAndRestore(backup), Crash(2, 0)])
    damage(backup)
    with pytest.raises(ValueError, match=rf"BackupAndRestore: the backup in '.*b' is corrupt and cannot be restored "
                                         rf"\(.*({message}).*\)\. Delete the folder to start training afresh"):
        fit(make_model(), toy_data, [BackupAndRestore(backup)])
    assert (backup / "training_state.json").exists()  # nothing deleted: the user decides


def test_resuming_with_other_data_is_refused(tmp_path, toy_data):
    backup = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        fit(make_model(), toy_data, [BackupAndRestore(backup, save_freq=2), Crash(1, 4)])
    with pytest.raises(ValueError, match=r"BackupAndRestore: the backup in .* was made with 8 batches per epoch, "
                                         r"this fit has 4; resume with the same data and batch_size"):
        fit(make_model(), toy_data, [BackupAndRestore(backup, save_freq=2)], batch_size=64)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"backup_dir": None}, ValueError, r"BackupAndRestore: `backup_dir` must be a folder path, received None"),
    ({"backup_dir": ""}, ValueError, r"BackupAndRestore: `backup_dir` must be a folder path, received ''"),
    ({"backup_dir": 3}, TypeError, r"BackupAndRestore: `backup_dir` must be a str or path, received 3"),
    ({"backup_dir": "b", "save_freq": 0}, ValueError,
     r"BackupAndRestore: `save_freq` must be 'epoch' or a positive number of batches, received 0"),
    ({"backup_dir": "b", "save_freq": "sometimes"}, ValueError, r"received 'sometimes'"),
    ({"backup_dir": "b", "save_freq": -2}, ValueError, r"received -2"),
    ({"backup_dir": "b", "save_freq": True}, ValueError, r"received True"),
    ({"backup_dir": "b", "save_freq": 2.0}, ValueError, r"received 2.0"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        BackupAndRestore(**kwargs)


def test_keras_argument_order_and_defaults(tmp_path):
    cb = BackupAndRestore(tmp_path, 5, True, False)
    assert (cb.backup_dir, cb.save_freq, cb.double_checkpoint, cb.delete_checkpoint) == (str(tmp_path), 5, True, False)
    cb = BackupAndRestore(tmp_path)
    assert (cb.save_freq, cb.double_checkpoint, cb.delete_checkpoint) == ("epoch", False, True)
