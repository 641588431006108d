"""Exporters (model lifecycle): models written for other systems, never imported by the runtime.

* :mod:`~es_biomed.export.tf_savedmodel` / :mod:`~es_biomed.export.tf_hub`: TensorFlow SavedModel / TF-Hub modules;
* :mod:`~es_biomed.export.eland_export`: TorchScript for Elasticsearch machine learning (uploaded with eland);
* :mod:`~es_biomed.export.qa_reader`: a trained Keras span model as the Hugging Face QA directory the reader loads.
"""
