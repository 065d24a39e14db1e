"""Model specs, safe weight loading, normalisation and canonizer choice."""
from __future__ import annotations

import re

import pytest
import torch
import torchvision
from torch import nn
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

from precompute.demo.model import build_demo_model
from precompute.errors import ConfigError, ModelError
from precompute.models import (
    ARCHITECTURES,
    NORMALIZATIONS,
    available_models,
    build_model,
    canonizers_for,
    check_canonized,
    input_bounds,
    load_model,
    load_weights,
    make_merged_batchnorm_exact,
    normalize,
)
from tests.helpers.tiny_models import densenet_like, tiny_resnet18, tiny_vgg_bn, write_model_file


@pytest.fixture
def model_file(tmp_path):
    return write_model_file(tmp_path)


def _images(batch=2, size=32, seed=0):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- build_model ---------------------------------------------------------------------


def test_torchvision_name_builds_with_num_classes_and_no_download(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = build_model("resnet18", num_classes=5)
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == 5


def test_file_spec_passes_num_classes(model_file):
    model = build_model(f"{model_file}:build", num_classes=6)
    assert model(_images(1, 8)).shape == (1, 6)


def test_file_spec_without_num_classes_parameter(model_file):
    model = build_model(f"{model_file}:build_fixed", num_classes=6)
    assert model[1].out_features == 7  # called without arguments


def test_file_spec_with_var_kwargs_gets_num_classes(model_file):
    assert build_model(f"{model_file}:build_kwargs", num_classes=4)[1].out_features == 4


def test_file_spec_can_import_neighbour_modules(tmp_path):
    write_model_file(tmp_path, "from torch import nn\nWIDTH = 3\n", name="helper_layers_for_spray.py")
    path = write_model_file(
        tmp_path,
        "from torch import nn\nimport helper_layers_for_spray\n\n"
        "def build(num_classes):\n    return nn.Linear(helper_layers_for_spray.WIDTH, num_classes)\n",
        name="model_with_neighbour.py",
    )
    assert build_model(f"{path}:build", 2).in_features == 3


def test_registered_demo_architecture():
    assert "spray_demo_vgg" in ARCHITECTURES
    model = build_model("spray_demo_vgg", num_classes=10)
    assert type(model) is type(build_demo_model(3))
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 10)


def test_available_models_lists_project_and_torchvision_names():
    names = available_models()
    assert "spray_demo_vgg" in names and "resnet18" in names and "vgg16_bn" in names
    assert "fasterrcnn_resnet50_fpn" not in names  # detection models take num_classes differently


def test_unknown_name_suggests_close_names():
    with pytest.raises(ModelError, match=r"unknown model 'resnet81'.*resnet18"):
        build_model("resnet81", num_classes=3)


def test_file_without_function_name_gets_a_hint(tmp_path):
    with pytest.raises(ModelError, match=r"file\.py:function"):
        build_model(str(tmp_path / "net.py"), num_classes=3)


def test_missing_model_file(tmp_path):
    path = tmp_path / "absent.py"
    with pytest.raises(ModelError, match=rf"model file {re.escape(str(path))} does not exist"):
        build_model(f"{path}:build", num_classes=3)


def test_file_with_no_such_function_lists_the_functions(model_file):
    message = rf"{re.escape(str(model_file))} has no function 'missing'.*build, build_fixed"
    with pytest.raises(ModelError, match=message):
        build_model(f"{model_file}:missing", num_classes=3)


def test_import_error_inside_the_file(tmp_path):
    path = write_model_file(tmp_path, "import a_package_that_does_not_exist_spray\n", name="bad.py")
    message = rf"{re.escape(str(path))} failed to import: ModuleNotFoundError.*a_package_that_does_not_exist"
    with pytest.raises(ModelError, match=message):
        build_model(f"{path}:build", num_classes=3)


def test_syntax_error_inside_the_file(tmp_path):
    path = write_model_file(tmp_path, "def build(:\n", name="syntax.py")
    with pytest.raises(ModelError, match=rf"{re.escape(str(path))} failed to import: SyntaxError"):
        build_model(f"{path}:build", num_classes=3)


def test_function_that_does_not_return_a_module(model_file):
    message = rf"{re.escape(str(model_file))}: not_a_module\(\) returned a str, not a torch.nn.Module"
    with pytest.raises(ModelError, match=message):
        build_model(f"{model_file}:not_a_module", num_classes=3)


def test_function_that_raises(model_file):
    with pytest.raises(ModelError, match=r"broken\(num_classes=3\) raised ValueError: the builder is broken"):
        build_model(f"{model_file}:broken", num_classes=3)


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_num_classes_must_be_a_positive_integer(num_classes):
    with pytest.raises(ConfigError, match="num_classes must be a positive integer"):
        build_model("resnet18", num_classes=num_classes)


# ---- load_weights --------------------------------------------------------------------


def test_torchvision_state_dict_round_trip_gives_identical_outputs(tmp_path):
    original = tiny_resnet18(num_classes=3, seed=1)
    with torch.no_grad():
        original.fc.bias.normal_()  # every tensor differs from a fresh build
    path = tmp_path / "weights.pt"
    torch.save(original.state_dict(), path)

    loaded = load_model("resnet18", path, num_classes=3)
    assert not loaded.training
    images = _images()
    with torch.no_grad():
        assert torch.equal(loaded(images), original(images))


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module_prefix"])
def test_nested_and_data_parallel_checkpoints(tmp_path, wrap):
    original = tiny_vgg_bn(num_classes=3, seed=2)
    state = original.state_dict()
    if wrap == "module_prefix":
        checkpoint = {f"module.{key}": value for key, value in state.items()}
    else:
        checkpoint = {wrap: state, "epoch": 3}
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)

    model = tiny_vgg_bn(num_classes=3, seed=99)
    load_weights(model, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_old_checkpoint_without_batchnorm_counters_loads(tmp_path):
    original = tiny_vgg_bn(seed=3)
    state = {key: value for key, value in original.state_dict().items() if not key.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save(state, path)
    model = tiny_vgg_bn(seed=4)
    load_weights(model, path)
    assert torch.equal(model[1].running_var, original[1].running_var)


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nothing.pt"
    with pytest.raises(ModelError, match=rf"weights file {re.escape(str(path))} does not exist"):
        load_weights(nn.Linear(2, 2), path)


@pytest.mark.parametrize("content", [b"", b"hello, these are not weights", bytes(range(256)) * 4])
def test_file_that_is_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=rf"weights file {re.escape(str(path))} is not a torch checkpoint"):
        load_weights(nn.Linear(2, 2), path)


class _RunsCodeWhenUnpickled:
    """Unpickling calls Path.touch(marker): harmless, but it proves code would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.marker),))


def test_pickled_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2, 2), "payload": _RunsCodeWhenUnpickled(str(marker))}, path)
    message = rf"weights file {re.escape(str(path))} was refused for safety.*Only plain state_dicts"
    with pytest.raises(ModelError, match=message):
        load_weights(nn.Linear(2, 2), path)
    assert not marker.exists()


def test_whole_pickled_module_is_refused(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(nn.Linear(2, 2), path)
    with pytest.raises(ModelError, match=r"refused for safety.*torch.save\(model.state_dict\(\), path\)"):
        load_weights(nn.Linear(2, 2), path)


def _write_zip(path):
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not weights")


def _write_png(path):
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)


def _write_code_pickle(path):
    import pickle

    with open(path, "wb") as handle:
        pickle.dump({"weight": _RunsCodeWhenUnpickled(str(path.with_name("code_ran")))}, handle)


WRONG_FILES = {
    "model.py": (lambda path: path.write_text("import torch\n\n\ndef build():\n    return torch.nn.Linear(2, 2)\n"),
                 "it looks like Python source; a model file is passed as --model path/file.py:function"),
    "notes.txt": (lambda path: path.write_text("learning rate 0.1, 90 epochs\n"), "it is a text file"),
    "photo.png": (_write_png, "it is a PNG image"),
    "archive.zip": (_write_zip, "it is a zip archive that torch.save did not write, holding readme.txt"),
    "plain.pkl": (lambda path: path.write_bytes(__import__("pickle").dumps({"weight": [1.0, 2.0]})),
                  "it is a Python pickle that torch.save did not write"),
}


@pytest.mark.parametrize("name", sorted(WRONG_FILES))
def test_a_file_of_another_kind_is_named_as_such(tmp_path, name):
    write, what = WRONG_FILES[name]
    path = tmp_path / name
    write(path)
    with pytest.raises(ModelError) as error:
        load_weights(nn.Linear(2, 2), path)
    message = str(error.value)
    assert message == (f"weights file {path} is not a torch checkpoint ({what}); "
                       "expected a state_dict saved with torch.save(model.state_dict(), path)")
    assert "weights_only" not in message


def test_a_pickle_with_code_is_refused_unread_and_no_unsafe_advice(tmp_path):
    path = tmp_path / "evil.pkl"
    _write_code_pickle(path)
    with pytest.raises(ModelError) as error:
        load_weights(nn.Linear(2, 2), path)
    message = str(error.value)
    assert message.startswith(f"weights file {path} was refused for safety: it is a Python pickle that refers "
                              "to code (")
    assert "global pathlib.Path" in message
    assert "it was not loaded" in message and "torch.save(model.state_dict(), path)" in message
    assert "weights_only" not in message and "trust" not in message
    assert not (tmp_path / "code_ran").exists()


def test_torch_pickles_of_code_or_whole_models_give_no_unsafe_advice(tmp_path):
    evil, whole = tmp_path / "evil.pt", tmp_path / "whole.pt"
    torch.save({"weight": _RunsCodeWhenUnpickled(str(tmp_path / "code_ran"))}, evil)
    torch.save(nn.Sequential(nn.Linear(2, 2)), whole)
    messages = {}
    for path in (evil, whole):
        with pytest.raises(ModelError) as error:
            load_weights(nn.Linear(2, 2), path)
        messages[path.name] = str(error.value)
        assert "weights_only" not in messages[path.name] and "trust" not in messages[path.name]
    assert "pickled Python objects (" in messages["evil.pt"] and "global pathlib.Path" in messages["evil.pt"]
    assert "holds a whole pickled model (torch.nn.modules." in messages["whole.pt"]
    assert not (tmp_path / "code_ran").exists()


def test_legacy_torch_checkpoints_still_load(tmp_path):
    original = nn.Linear(2, 2)
    path = tmp_path / "legacy.pt"
    torch.save(original.state_dict(), path, _use_new_zipfile_serialization=False)
    model = nn.Linear(2, 2)
    load_weights(model, path)
    assert torch.equal(model.weight, original.weight)


def test_checkpoint_without_state_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ModelError, match=rf"{re.escape(str(path))} holds a Tensor, not a state_dict"):
        load_weights(nn.Linear(2, 2), path)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = nn.Linear(2, 2).state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["bias"]
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    with pytest.raises(ModelError) as error:
        load_weights(nn.Linear(2, 2), path)
    message = str(error.value)
    assert str(path) in message
    assert "1 key missing from the file ('bias')" in message
    assert "1 unexpected key in the file ('extra.weight')" in message


def test_many_missing_keys_are_abbreviated(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({}, path)
    with pytest.raises(ModelError, match=r"\d+ keys missing from the file \(.*and \d+ more\)"):
        load_weights(tiny_vgg_bn(), path)


def test_shape_mismatches_are_listed(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).state_dict(), path)
    with pytest.raises(ModelError, match=r"shapes differ for 1 tensor \(0.weight: file \(4, 3\) vs model \(4, 5\)\)"):
        load_weights(nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 2)), path)


def test_wrong_number_of_classes_is_said_in_plain_words(tmp_path, model_file):
    path = tmp_path / "imagenet_head.pt"
    torch.save(build_model(f"{model_file}:build", num_classes=1000).state_dict(), path)
    model = build_model(f"{model_file}:build", num_classes=8)
    with pytest.raises(ModelError) as error:
        load_weights(model, path)
    assert str(path) in str(error.value)
    assert (
        "the weights have 1000 outputs but the model was built with 8 classes; pass --num-classes 1000"
        in str(error.value)
    )


def test_wrong_number_of_classes_on_a_torchvision_model(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(build_model("resnet18", num_classes=10).state_dict(), path)
    with pytest.raises(ModelError, match="the weights have 10 outputs but the model was built with 4 classes"):
        load_model("resnet18", path, num_classes=4)


# ---- normalisation -------------------------------------------------------------------


def test_imagenet_normalization_matches_torchvision():
    images = _images()
    mean, std = NORMALIZATIONS["imagenet"]
    expected = torchvision.transforms.Normalize(mean, std)(images)
    assert torch.allclose(normalize(images, "imagenet"), expected)
    assert normalize(images, "none") is images


def test_input_bounds_are_the_normalised_zero_and_one():
    low, high = input_bounds("imagenet")
    assert low.shape == high.shape == (1, 3, 1, 1)
    assert torch.allclose(low, normalize(torch.zeros(1, 3, 1, 1), "imagenet"))
    assert torch.allclose(high, normalize(torch.ones(1, 3, 1, 1), "imagenet"))
    low, high = input_bounds("none")
    assert torch.equal(low, torch.zeros(1, 3, 1, 1)) and torch.equal(high, torch.ones(1, 3, 1, 1))


def test_unknown_normalization_and_channel_mismatch():
    with pytest.raises(ConfigError, match="unknown normalization 'cifar'; known: imagenet, none"):
        normalize(_images(), "cifar")
    with pytest.raises(ConfigError, match="3-channel images, but the images have 1 channels"):
        normalize(torch.rand(1, 1, 4, 4), "imagenet")


# ---- canonizers ----------------------------------------------------------------------


def test_canonizers_for_torchvision_resnets():
    (canonizer,) = canonizers_for(tiny_resnet18(), "resnet18")
    assert isinstance(canonizer, ResNetCanonizer)
    # resnext and wide_resnet use the same torchvision blocks (Bottleneck).
    bottleneck_resnet = torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [1, 1, 1, 1])
    assert isinstance(canonizers_for(bottleneck_resnet)[0], ResNetCanonizer)


def test_canonizers_for_batchnorm_after_conv():
    (canonizer,) = canonizers_for(tiny_vgg_bn())
    assert type(canonizer) is SequentialMergeBatchNorm


def test_no_canonizers_without_batchnorm():
    assert canonizers_for(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())) == []


def test_no_canonizer_for_batchnorm_before_conv():
    assert canonizers_for(densenet_like()) == []


def test_check_canonized_passes_inside_the_composite_context():
    model = tiny_vgg_bn()
    composite = EpsilonPlusFlat(canonizers=canonizers_for(model))
    with pytest.raises(ModelError):
        check_canonized(model)  # not merged yet
    with composite.context(model):
        check_canonized(model)


def test_merged_batchnorm_is_made_an_exact_identity():
    model = tiny_vgg_bn()
    images = normalize(_images(2, 16), "imagenet")
    with torch.no_grad():
        expected = model(images)
        composite = EpsilonPlusFlat(canonizers=canonizers_for(model))
        with composite.context(model):
            zennit_only = model(images)
            assert make_merged_batchnorm_exact(composite.handles) == 2
            exact = model(images)
            check_canonized(model)
        after = model(images)
    # zennit alone leaves x / sqrt(1 + eps) per BatchNorm: a relative error of about eps / 2 each.
    assert not torch.allclose(zennit_only, expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(exact, expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(after, expected)  # removing the composite restores the model


def test_check_canonized_refuses_densenet_like_models():
    model = densenet_like()
    composite = EpsilonPlusFlat(canonizers=canonizers_for(model))
    with composite.context(model), pytest.raises(ModelError) as error:
        check_canonized(model, "densenet_like")
    message = str(error.value)
    assert "'densenet_like' is unsupported" in message
    assert "1 of 1 BatchNorm layers ('2')" in message
    assert "DenseNet" in message


def test_check_canonized_refuses_train_mode_batchnorm():
    model = tiny_vgg_bn()
    composite = EpsilonPlusFlat(canonizers=canonizers_for(model))
    with composite.context(model):
        model.train()
        with pytest.raises(ModelError, match="eval mode"):
            check_canonized(model)
        model.eval()


def test_check_canonized_accepts_models_without_batchnorm():
    check_canonized(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
