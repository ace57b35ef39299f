"""Train a :class:`~smart_retrievers.adapter.SmartAdapter` on frozen token states, on a CPU.

* :mod:`.states`: :class:`TokenStates`, the frozen encodings cached on disk (:func:`encode_states`);
* :mod:`.data`: :func:`load_training_data`, which refuses unusable qrels (:class:`TrainingDataError`);
* :mod:`.loss`: the differentiable late score (:func:`late_maxsim`) and the InfoNCE batch logits;
* :mod:`.fit`: the loop (:func:`fit_adapter`, :func:`train_adapter`, :class:`TrainConfig`),
  :func:`training_loss` and the validation rankings (:func:`smart_rankings`).

The command line is ``smart-retrievers train BEIR_DIR --out ADAPTER_DIR`` (:mod:`smart_retrievers.cli`).
"""

from .data import TrainingDataError, load_training_data
from .fit import (
    TrainConfig,
    TrainResult,
    fit_adapter,
    smart_rankings,
    train_adapter,
    training_loss,
)
from .loss import late_maxsim
from .states import TokenStates, default_cache_dir, encode_states

__all__ = [
    "TokenStates",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "default_cache_dir",
    "encode_states",
    "fit_adapter",
    "late_maxsim",
    "load_training_data",
    "smart_rankings",
    "train_adapter",
    "training_loss",
]
