"""TensorFlow (Keras) BERT lifecycle: load, save, Google-checkpoint conversion, MLM pretraining, fine-tuning heads
(the TF-Hub export is :mod:`es_biomed.export.tf_hub`).

TensorFlow and transformers are imported inside the functions, so importing this package stays light. Importing it
also makes a later ``import tensorflow`` load TensorFlow's native libraries ``RTLD_LOCAL`` (see
:mod:`es_biomed.encode.tf_dlopen`: with ``RTLD_GLOBAL``, as the TF 2.20/2.21 wheels do, a later ``import triton``
segfaults).
"""

from es_biomed.encode.tf_dlopen import keep_tensorflow_symbols_local
from es_biomed.train.tf.bert import CheckpointError, load_bert, save_bert, write_google_checkpoint

__all__ = [
    "CheckpointError",
    "keep_tensorflow_symbols_local",
    "load_bert",
    "save_bert",
    "write_google_checkpoint",
]

# Runs on the import of any es_biomed.train.tf module, none of which imports TensorFlow at module level.
keep_tensorflow_symbols_local()
