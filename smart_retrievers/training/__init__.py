"""Train a :class:`~smart_retrievers.adapter.SmartAdapter` on frozen token states, on a CPU.

* :mod:`.states`: :class:`TokenStates`, the frozen encodings cached on disk (:func:`encode_states`);
* :mod:`.data`: :func:`load_training_data`, which refuses unusable qrels (:class:`TrainingDataError`);
* :mod:`.loss`: the differentiable late score (:func:`late_maxsim`) and the InfoNCE batch logits;
* :mod:`.config`: :class:`TrainConfig` and :class:`TrainResult`;
* :mod:`.task`: the queries' positives, mined and drawn negatives, held-out split and batches, as state rows;
* :mod:`.rankings`: pooled and SMART rankings from cached states (:func:`smart_rankings`), held-out nDCG@10;
* :mod:`.fit`: the loop (:func:`fit_adapter`, :func:`train_adapter`) and :func:`training_loss`.

The command line is ``smart-retrievers train BEIR_DIR --out ADAPTER_DIR`` (:mod:`smart_retrievers.cli.train`).
"""

from .config import TrainConfig, TrainResult
from .data import TrainingDataError, load_training_data
from .fit import fit_adapter, train_adapter, training_loss
from .loss import late_maxsim
from .rankings import smart_rankings
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
