"""TensorFlow (Keras) BERT lifecycle: load, save, Google-checkpoint conversion, TF-Hub export, MLM pretraining.

TensorFlow and transformers are imported inside the functions, so importing this package stays light.
"""

from es_biomed.tfmodels.bert import CheckpointError, load_bert, save_bert, write_google_checkpoint
from es_biomed.tfmodels.export import export_hub_module

__all__ = ["CheckpointError", "export_hub_module", "load_bert", "save_bert", "write_google_checkpoint"]
