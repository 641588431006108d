"""PyTorch training on sentence-transformers' trainers: the bi-encoder (InfoNCE) and the cross-encoder.

Beside the TensorFlow lifecycle (:mod:`es_biomed.train.tf`), which serves the Google-BERT checkpoints, this is
the path for bases TensorFlow's Keras BERT cannot load (MPNet) and for bf16 autocast on CPUs with AMX, about
2.5 times the TensorFlow trainer's examples/s on the project's 2-core machine.
"""
