"""TensorFlow (Keras) BERT lifecycle: load, save, Google-checkpoint conversion, TF-Hub export, MLM pretraining.

TensorFlow and transformers are imported inside the functions, so importing this package stays light.
"""

from es_biomed.tfmodels.bert import load_bert, save_bert

__all__ = ["load_bert", "save_bert"]
