"""The embedded demo: a procedural shapes dataset with planted Clever-Hans artifacts,
a small VGG-style model trained on it, a one-call builder of all demo assets, and a
second model of another architecture (a small ResNet) trained on the same data."""
from .artifacts import ARTIFACTS, Artifact, artifacts_for_class, save_artifacts
from .dataset import (
    CLASSES,
    MASKS_FOLDER,
    DemoRecord,
    generate_dataset,
    read_truth,
    render_sample,
    write_truth,
)
from .model import DemoResNet, DemoVGG, build_demo_model, build_demo_resnet
from .train import build_demo_assets, load_image_folder, train_demo_model, train_second_model

__all__ = [
    "ARTIFACTS",
    "CLASSES",
    "MASKS_FOLDER",
    "Artifact",
    "DemoRecord",
    "DemoResNet",
    "DemoVGG",
    "artifacts_for_class",
    "build_demo_assets",
    "build_demo_model",
    "build_demo_resnet",
    "generate_dataset",
    "load_image_folder",
    "read_truth",
    "render_sample",
    "save_artifacts",
    "train_demo_model",
    "train_second_model",
    "write_truth",
]
