"""Un-Hans a model: Class Artifact Compensation (ClArC), verified before and after.

Anders et al. model an artifact as a direction in a layer's activations (a concept
activation vector, CAV) and remove what the model learned from it, either post hoc by a
projection (P-ClArC) or by fine-tuning on data where the artifact no longer tells the
classes apart (A-ClArC); RR-ClArC (Dreyer et al.) fine-tunes the model's sensitivity
along the CAV away. Each correction is verified on held-out data and stored as a model
variant of the run, with a cleaning list of the samples that lie far along the CAV.

Modules
-------
layers       where a concept lives: ``NAME`` or ``NAME:input``, hooks, activations
concept      the CAV (:data:`CAV_METHODS`: signal pattern, linear SVM) and its clean reference
projection   P-ClArC's projection ``a' = a + v (r − vᵀa)``
finetune     the fine-tuning recipe and loop (A-ClArC's paste, RR-ClArC's penalty)
corrections  :data:`CORRECTIONS`: pclarc, aclarc, rrclarc
verify       the before/after report on held-out data
cleaning     every sample scored along the CAV; the CSV
unhans       all of it in one call (the CLI's and the lab's)
variants     load a stored variant
"""
from .concept import CAV_METHODS, Concept, fit_concept
from .corrections import CORRECTIONS, Corrected, CorrectionInput
from .finetune import FinetuneRecipe
from .layers import LayerRef, default_layer, resolve_layer
from .projection import Projection, project_out
from .unhans import UnhansResult, UnhansSpec, run_unhans, save_variant
from .variants import apply_variant, load_variant_model, variant_summary

__all__ = [
    "CAV_METHODS", "Concept", "fit_concept", "CORRECTIONS", "Corrected", "CorrectionInput", "FinetuneRecipe",
    "LayerRef", "default_layer", "resolve_layer", "Projection", "project_out", "UnhansResult", "UnhansSpec",
    "run_unhans", "save_variant", "apply_variant", "load_variant_model", "variant_summary",
]
