"""save / load (``_persistence.py``): safe files that give back the same model."""

import json
import os
import pickle
import sys
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from numpy.testing import assert_array_equal
from safetensors import safe_open
from skorch.callbacks import EpochTimer
from skorch.exceptions import DeviceWarning
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from sklearn_betavae import BetaTCVAE, BetaVAE, DIPVAE, FactorVAE, load, save
from sklearn_betavae import _net, _persistence

ESTIMATORS = [BetaVAE, BetaTCVAE, DIPVAE, FactorVAE]


def _tiny(cls, **params):
    defaults = dict(n_components=2, hidden_layer_sizes=(8,), max_epochs=2, batch_size=32,
                    random_state=0)
    if cls is FactorVAE:
        defaults["discriminator_hidden_layer_sizes"] = (8,)
    return cls(**{**defaults, **params})


@pytest.fixture(scope="module")
def X():
    return load_digits().data[:120] / 16.0


@pytest.fixture(scope="module")
def fitted(X):
    return {cls: _tiny(cls).fit(X) for cls in ESTIMATORS}


def _round_trip(estimator, folder, **kwargs):
    path = os.path.join(folder, "model.safetensors")
    save(estimator, path, **kwargs)
    return load(path)


def _read(path):
    """The JSON document and the tensors of a saved file."""
    with safe_open(path, framework="pt") as file:
        document = json.loads(file.metadata()[_persistence._DOCUMENT_KEY])
        return document, {key: file.get_tensor(key) for key in file.keys()}


def _rewrite(path, edit):
    """Apply ``edit(document, tensors)`` to a saved file and sign it again (a valid digest)."""
    document, tensors = _read(path)
    edit(document, tensors)
    text = json.dumps(document)
    metadata = {
        _persistence._DOCUMENT_KEY: text,
        _persistence._DIGEST_KEY: _persistence._digest(text, tensors),
    }
    safetensors.torch.save_file(tensors, path, metadata=metadata)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_loaded_model_gives_bitwise_the_same_results(cls, fitted, X, tmp_path):
    # Every output, the parameters, the history and the fitted attributes survive save + load.
    vae = fitted[cls]
    loaded = _round_trip(vae, tmp_path)
    assert type(loaded) is cls
    Z = vae.transform(X)
    assert_array_equal(loaded.transform(X), Z)
    assert_array_equal(loaded.inverse_transform(Z), vae.inverse_transform(Z))
    assert_array_equal(loaded.score_samples(X), vae.score_samples(X))
    assert_array_equal(loaded.kl_per_dim(X), vae.kl_per_dim(X))
    for got, expected in zip(loaded.rate_distortion(X), vae.rate_distortion(X)):
        assert_array_equal(got, expected)
    assert_array_equal(loaded.sample(5, random_state=3), vae.sample(5, random_state=3))
    assert loaded.get_params() == vae.get_params()
    assert loaded.history_ == vae.history_
    for name in _persistence._FITTED_ATTRIBUTES:
        if hasattr(vae, name):
            got, expected = getattr(loaded, name), getattr(vae, name)
            if isinstance(expected, np.ndarray):
                assert_array_equal(got, expected, err_msg=name)
            else:
                assert got == expected, name


def test_dataframe_feature_names_and_output_config_round_trip(X, tmp_path):
    # feature_names_in_ of DataFrame input comes back, and so does set_output's pandas output.
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    vae = _tiny(BetaVAE).fit(frame).set_output(transform="pandas")
    loaded = _round_trip(vae, tmp_path)
    assert_array_equal(loaded.feature_names_in_, vae.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    pd.testing.assert_frame_equal(loaded.transform(frame), vae.transform(frame))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_fitted_attribute_is_known_to_the_file_format(cls, X, tmp_path):
    # A fitted attribute that save does not know fails here: add it to _FITTED_ATTRIBUTES.
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    vae = _tiny(cls, early_stopping=True, validation_fraction=0.2).set_output(transform="pandas")
    vae.fit(frame).partial_fit(frame)
    params = vae.get_params(deep=False)
    known = set(_persistence._FITTED_ATTRIBUTES) | set(_persistence._REBUILT_ATTRIBUTES)
    assert set(vars(vae)) - set(params) <= known
    # The rebuilt net has every attribute of the saved one but the generators each fit re-seeds.
    loaded = _round_trip(vae, tmp_path)
    reseeded = {"_shuffle_generator", "_noise_generator"}
    assert set(vars(vae.net_)) - reseeded == set(vars(loaded.net_)) - reseeded


def test_training_continues_after_load_with_warm_start_and_partial_fit(fitted, X, tmp_path):
    # A default file (no optimizer state) trains on: partial_fit and warm_start fit add epochs.
    vae = fitted[BetaVAE]
    loaded = _round_trip(vae, tmp_path)
    loaded.partial_fit(X)
    assert loaded.n_iter_ == vae.n_iter_ + 1 and len(loaded.history_) == vae.n_iter_ + 1
    loaded.set_params(warm_start=True, max_epochs=1).fit(X)
    assert loaded.n_iter_ == vae.n_iter_ + 2
    assert np.isfinite(loaded.score(X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_saved_optimizer_state_continues_training_exactly(cls, X, tmp_path):
    # With include_optimizer=True, one more epoch after load equals one more epoch of the
    # original, bitwise (for FactorVAE: discriminator and its optimizer included); without it,
    # training restarts the optimizer (and FactorVAE's discriminator) and differs.
    original, fresh = _tiny(cls).fit(X), _tiny(cls).fit(X)
    exact = _round_trip(original, tmp_path, include_optimizer=True)
    restarted = _round_trip(fresh, tmp_path)
    for vae in (original, exact, restarted):
        vae.partial_fit(X)
    assert_array_equal(exact.transform(X), original.transform(X))
    assert exact.history_[-1, "train_loss"] == original.history_[-1, "train_loss"]
    assert exact.net_.n_steps_ == original.net_.n_steps_
    assert not np.array_equal(restarted.transform(X), original.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn_betavae.exceptions.PosteriorCollapseWarning")
def test_saved_optimizer_state_continues_channels_last_training_exactly(tmp_path):
    # A convolutional model in bf16 has channels_last weights; the file holds contiguous
    # tensors, and the loaded Adam moments must take their weights' layout again (the fused
    # update reads moments and weights element by element in memory order).
    from sklearn_betavae.datasets import make_sprites

    X, _ = make_sprites(96, image_size=16, random_state=0)
    params = dict(n_components=2, image_shape=(16, 16), max_epochs=1, batch_size=32,
                  precision="bf16", random_state=0)
    original = BetaVAE(**params).fit(X)
    exact = _round_trip(original, tmp_path, include_optimizer=True)
    weight = exact.module_.encoder.conv[2].weight  # 32 -> 32 channels
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    moment = exact.net_.optimizer_.state[weight]["exp_avg"]
    assert moment.stride() == weight.stride()
    for vae in (original, exact):
        vae.partial_fit(X)
    assert_array_equal(exact.transform(X), original.transform(X))


def test_default_file_holds_encoder_and_decoder_weights_only(fitted, tmp_path):
    # save() stores module_ only; include_optimizer adds the optimizers and the discriminator.
    vae = fitted[FactorVAE]
    path = tmp_path / "model.safetensors"
    save(vae, path)
    _, tensors = _read(path)
    assert set(tensors) == {f"module_.{key}" for key in vae.module_.state_dict()}
    save(vae, path, include_optimizer=True)
    _, tensors = _read(path)
    prefixes = {name.split(".")[0] for name in tensors}
    assert prefixes == {"module_", "discriminator_", "optimizer_", "discriminator_optimizer_"}


def test_default_file_is_small(X, tmp_path):
    # The default file is the weights plus JSON, far smaller than a pickle of a FactorVAE.
    vae = _tiny(FactorVAE, discriminator_hidden_layer_sizes=(64, 64)).fit(X)
    weights = sum(p.numel() * p.element_size() for p in vae.module_.parameters())
    path = tmp_path / "model.safetensors"
    save(vae, path)
    document = json.dumps(_read(path)[0])
    assert os.path.getsize(path) < weights + 2 * len(document) + 2000
    assert 4 * os.path.getsize(path) < len(pickle.dumps(vae))
    save(vae, path, include_optimizer=True)
    training = sum(p.numel() * p.element_size() for p in vae.discriminator_.parameters())
    assert os.path.getsize(path) > 3 * (weights + training)


def test_parameters_changed_after_fit_keep_the_fitted_network(fitted, X, tmp_path):
    # set_params after fit (architecture, batch size) neither breaks load nor changes outputs.
    vae = _tiny(BetaVAE).fit(X).set_params(hidden_layer_sizes=(16,), batch_size=7)
    loaded = _round_trip(vae, tmp_path)
    assert loaded.get_params() == vae.get_params()
    assert_array_equal(loaded.transform(X), vae.transform(X))
    assert_array_equal(loaded.score_samples(X), vae.score_samples(X))


def test_parameter_values_are_normalised_or_round_trip(X, tmp_path):
    # numpy scalars become Python numbers; lists, tuples, torch.device, RandomState come back.
    vae = _tiny(FactorVAE, n_components=np.int64(2), hidden_layer_sizes=[8], max_epochs=np.int32(2),
                learning_rate=np.float32(1e-3), device=torch.device("cpu"),
                random_state=np.random.RandomState(0)).fit(X)
    loaded = _round_trip(vae, tmp_path)
    params = loaded.get_params()
    assert type(params["n_components"]) is int and params["n_components"] == 2
    assert type(params["max_epochs"]) is int and params["max_epochs"] == 2
    assert type(params["learning_rate"]) is float and params["learning_rate"] == vae.learning_rate
    assert params["hidden_layer_sizes"] == [8]
    assert params["discriminator_hidden_layer_sizes"] == (8,)
    assert params["device"] == torch.device("cpu")
    state, expected = params["random_state"].get_state(), vae.random_state.get_state()
    assert_array_equal(state[1], expected[1]) and state[2:] == expected[2:]
    assert_array_equal(loaded.transform(X), vae.transform(X))


def test_unstorable_parameters_raise_a_clear_error(fitted, tmp_path):
    # Callbacks and other objects JSON cannot hold are refused by name, never dropped silently.
    vae = fitted[BetaVAE]
    path = tmp_path / "model.safetensors"
    try:
        vae.set_params(callbacks=[EpochTimer()])
        with pytest.raises(ValueError, match=r"callbacks=.*set_params\(callbacks=None\).*pickle"):
            save(vae, path)
        vae.set_params(callbacks=None, tol=Fraction(1, 10000))
        with pytest.raises(ValueError, match="parameter tol=Fraction.*fractions.Fraction"):
            save(vae, path)
    finally:
        vae.set_params(callbacks=None, tol=1e-4)
    assert not path.exists()
    save(vae.set_params(callbacks=[]), path)  # an empty list is stored as it is
    assert load(path).callbacks == []
    vae.set_params(callbacks=None)


def test_malformed_gradient_scaler_states_are_refused(fitted, tmp_path):
    # The fp16 loss scales of save(include_optimizer=True) are checked like the rest.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path, include_optimizer=True)
    assert _read(path)[0]["net"]["grad_scalers"] == {}  # an fp32 model has none

    def malformed(document, tensors):
        document["net"]["grad_scalers"] = ["scale", 1024]

    _rewrite(path, malformed)
    with pytest.raises(ValueError, match="invalid gradient scaler states"):
        load(path)


def test_model_saved_on_gpu_loads_on_cpu(fitted, X, tmp_path):
    # A file whose model says device="cuda" loads on a machine without CUDA, on the CPU, warning.
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    vae = fitted[BetaVAE]
    path = tmp_path / "model.safetensors"
    save(vae, path)

    def on_cuda(document, tensors):
        document["params"]["device"] = "cuda"
        document["fitted"]["_fit_architecture"]["value"]["device"] = "cuda"
        document["net"]["device"] = "cuda"

    _rewrite(path, on_cuda)
    with pytest.warns(DeviceWarning, match="'cuda', which is not available here; loading it on"):
        loaded = load(path)
    assert loaded.device == "cuda" and str(loaded.net_.device) == "cpu"
    assert_array_equal(loaded.transform(X), vae.transform(X))
    loaded.partial_fit(X)  # continues on the CPU, as an unpickled GPU model does
    assert loaded.n_iter_ == vae.n_iter_ + 1


def test_a_gpu_index_beyond_this_machines_gpus_loads_on_the_current_gpu(monkeypatch):
    # A model saved on "cuda:1" loads where there is one GPU on "cuda", with a warning
    # (building it on "cuda:1" would fail); indices that exist are kept. (CUDA faked.)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.warns(DeviceWarning, match=r"'cuda:1', but this machine has 1 CUDA device"):
        assert _net.loading_device("cuda:1") == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _net.loading_device("cuda:0") == "cuda:0"
        assert _net.loading_device("cuda") == "cuda"


def test_a_model_pickled_on_mps_unpickles_on_the_cpu(fitted, X):
    # skorch maps only CUDA to the CPU when unpickling; a model pickled on a Mac's GPU
    # ("mps") used to fail elsewhere ("Storage device not recognized: mps").
    if torch.backends.mps.is_available():
        pytest.skip("needs a machine without MPS")
    vae = pickle.loads(pickle.dumps(fitted[BetaVAE]))
    vae.net_.device = "mps"  # as if fitted there (its tensors are the same)
    with pytest.warns(DeviceWarning, match="'mps', which is not available here"):
        loaded = pickle.loads(pickle.dumps(vae))
    assert str(loaded.net_.device) == "cpu"
    assert_array_equal(loaded.transform(X), fitted[BetaVAE].transform(X))


def test_truncated_file_raises_value_error(fitted, tmp_path):
    # A file cut anywhere (or empty) is refused with a ValueError, not a crash.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path)
    data = path.read_bytes()
    for size in (0, 5, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match="not a readable safetensors file.*truncated"):
            load(path)


def test_modified_tensor_bytes_fail_the_digest(fitted, tmp_path):
    # One flipped bit among the weights (the end of the file) is detected.
    path = tmp_path / "model.safetensors"
    save(fitted[DIPVAE], path)
    data = bytearray(path.read_bytes())
    data[-7] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified after saving.*SHA-256"):
        load(path)


def test_modified_json_fails_the_digest(fitted, tmp_path):
    # An edit of the JSON that keeps it valid (n_iter_ 2 -> 3) is detected; so is a broken one.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path)
    data = path.read_bytes()
    field = b'n_iter_\\":2'
    assert data.count(field) == 1
    path.write_bytes(data.replace(field, b'n_iter_\\":3'))
    with pytest.raises(ValueError, match="modified after saving"):
        load(path)
    path.write_bytes(data.replace(field, b'n_iter_\\":{'))
    with pytest.raises(ValueError, match="corrupted"):
        load(path)


def test_newer_format_version_is_refused(fitted, tmp_path, monkeypatch):
    # A file from a future format names its version and asks for an upgrade.
    path = tmp_path / "model.safetensors"
    monkeypatch.setattr(_persistence, "_FORMAT_VERSION", 2)
    save(fitted[BetaVAE], path)
    monkeypatch.setattr(_persistence, "_FORMAT_VERSION", 1)
    with pytest.raises(ValueError, match="format version 2.*reads format 1 and older.*upgrade"):
        load(path)


def test_unknown_class_is_refused(fitted, tmp_path):
    # Only the package's estimators are built: another class name is an error, never imported.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path)
    _rewrite(path, lambda document, tensors: document.update({"class": "os.system"}))
    with pytest.raises(ValueError, match="unknown estimator class 'os.system'"):
        load(path)


@pytest.mark.parametrize("problem", ["missing", "unexpected", "shape"])
def test_tensors_must_match_the_model(fitted, tmp_path, problem):
    # A validly signed file whose tensors do not fit the model names the tensor at fault.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path)
    name = "module_.encoder.net.0.weight"

    def edit(document, tensors):
        if problem == "missing":
            del tensors[name]
        elif problem == "unexpected":
            tensors["module_.extra"] = torch.zeros(3)
        else:
            tensors[name] = tensors[name][:, :-1].contiguous()

    _rewrite(path, edit)
    message = {"missing": "missing tensors.*encoder", "unexpected": "unexpected tensors.*extra",
               "shape": "encoder.net.0.weight.*has shape"}[problem]
    with pytest.raises(ValueError, match=message):
        load(path)


def test_unknown_parameter_or_attribute_is_refused(fitted, tmp_path):
    # A validly signed file with a parameter or fitted attribute the class lacks is refused.
    path = tmp_path / "model.safetensors"
    save(fitted[BetaVAE], path)
    _rewrite(path, lambda document, tensors: document["params"].update(gamma=1.0))
    with pytest.raises(ValueError, match=r"BetaVAE has no parameters \['gamma'\]"):
        load(path)
    save(fitted[BetaVAE], path)
    _rewrite(path, lambda document, tensors: document["fitted"].update(classes_=[0, 1]))
    with pytest.raises(ValueError, match=r"unknown fitted attributes \['classes_'\]"):
        load(path)


def test_load_uses_neither_pickle_nor_torch_load(fitted, X, tmp_path, monkeypatch):
    # Loading never unpickles: pickle and torch.load are unusable during load.
    path = tmp_path / "model.safetensors"
    save(fitted[FactorVAE], path, include_optimizer=True)

    def refuse(*args, **kwargs):
        raise AssertionError("load must not unpickle")

    for module, name in [(pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"),
                         (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    assert_array_equal(load(path).transform(X), fitted[FactorVAE].transform(X))


def test_other_files_and_estimators_raise_clear_errors(fitted, tmp_path):
    # Missing path: FileNotFoundError; a plain safetensors file, an unfitted or foreign estimator.
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.safetensors")
    path = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="holds no sklearn_betavae model"):
        load(path)
    with pytest.raises(NotFittedError):
        save(BetaVAE(), path)
    with pytest.raises(TypeError, match="save writes BetaVAE"):
        save(PCA().fit(np.eye(3)), path)


def test_missing_safetensors_raises_import_error_with_pip_command(fitted, tmp_path, monkeypatch):
    # Without the optional safetensors package, save and load say how to install it.
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match="pip install safetensors"):
        save(fitted[BetaVAE], tmp_path / "model.safetensors")
    with pytest.raises(ImportError, match="pip install safetensors"):
        load(tmp_path / "model.safetensors")


def test_warnings_free_round_trip(fitted, tmp_path):
    # save and load of a CPU model emit no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _round_trip(fitted[BetaTCVAE], tmp_path)


def test_precision_and_code_valued_parameters(X, tmp_path):
    # A bf16 model comes back bf16 and bitwise; custom module classes and optimizer classes,
    # which are code, are refused with advice.
    vae = _tiny(BetaVAE, precision="bf16").fit(X)
    loaded = _round_trip(vae, tmp_path)
    assert loaded.precision_ == "bf16"
    assert_array_equal(loaded.transform(X), vae.transform(X))
    path = tmp_path / "code.safetensors"
    custom = _tiny(BetaVAE, decoder=torch.nn.Linear).fit(X)
    with pytest.raises(ValueError, match=r"decoder=.*custom decoder class is code"):
        save(custom, path)
    sgd = _tiny(BetaVAE, optimizer=torch.optim.SGD).fit(X)
    with pytest.raises(ValueError, match=r"optimizer=.*set_params\(optimizer='adam'"):
        save(sgd, path)
    assert not path.exists()


def _without_regularizer_scale(document, tensors):
    """A file as sklearn-betavae 0.1.0 wrote it: before ``regularizer_scale`` existed."""
    del document["params"]["regularizer_scale"]
    del document["fitted"]["regularizer_scale_"]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_files_and_pickles_of_earlier_versions_load_with_their_objective(cls, fitted, X,
                                                                        tmp_path):
    # Models saved before regularizer_scale existed were trained at scale 1: they load with
    # regularizer_scale=1.0 (not the new "auto"), give the same results and train on as before.
    model = fitted[cls]
    path = tmp_path / "model.safetensors"
    save(model, path)
    _rewrite(path, _without_regularizer_scale)
    state = pickle.loads(pickle.dumps(model)).__getstate__()
    del state["regularizer_scale"], state["regularizer_scale_"]
    unpickled = cls.__new__(cls)
    unpickled.__setstate__(state)
    for old in (load(path), unpickled):
        assert old.get_params()["regularizer_scale"] == 1.0 and old.regularizer_scale_ == 1.0
        assert_array_equal(old.transform(X), model.transform(X))
        old.set_params(warm_start=True, max_epochs=1).fit(X)
        assert old.net_.criterion_.regularizer_scale == 1.0
