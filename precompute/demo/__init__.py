"""The embedded demo: a procedural shapes dataset with planted Clever-Hans artifacts,
a small VGG-style model trained on it, and a one-call builder of all demo assets."""
from .artifacts import ARTIFACTS, Artifact, artifact_for_class, save_artifacts
from .dataset import (
    ARTIFACT_FRACTION,
    CLASSES,
    MASKS_FOLDER,
    DemoRecord,
    generate_dataset,
    read_truth,
    render_sample,
    write_truth,
)
from .model import DemoVGG, build_demo_model
from .train import build_demo_assets, load_image_folder, train_demo_model

__all__ = [
    "ARTIFACT_FRACTION",
    "ARTIFACTS",
    "CLASSES",
    "MASKS_FOLDER",
    "Artifact",
    "DemoRecord",
    "DemoVGG",
    "artifact_for_class",
    "build_demo_assets",
    "build_demo_model",
    "generate_dataset",
    "load_image_folder",
    "read_truth",
    "render_sample",
    "save_artifacts",
    "train_demo_model",
    "write_truth",
]
