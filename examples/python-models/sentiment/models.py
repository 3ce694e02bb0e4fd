"""The generic-python FLIP's sentiment example, with a model that ships in its PyPI wheel.

The FLIP's ``HuggingFaceSentimentPredictFunction`` builds a transformers pipeline from the
model directory; Sluice's examples fetch nothing from a model hub, so this one scores with
VADER (``pip install vaderSentiment``: a rule-based model whose lexicon is in the wheel)
and keeps the FLIP's class name, layout and output columns (``sentiment STRING,
confidence FLOAT``).
"""

from typing import List

from sluice import PyPredictFunction, Row
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


class HuggingFaceSentimentPredictFunction(PyPredictFunction):
    """Sentiment of a text: 'positive', 'negative' or 'neutral', with the confidence
    (the absolute VADER compound score, from 0 to 1)."""

    def open(self, context):
        """Loads the lexicon; ``properties.threshold`` (default 0.05) bounds 'neutral'."""
        super().open(context)
        self.pipeline = SentimentIntensityAnalyzer()
        self.threshold = float(context.get_property("threshold", "0.05"))

    def predict(self, data: Row) -> List[Row]:
        """Scores the row's first column."""
        text = data[0] if len(data) > 0 else ""
        compound = self.pipeline.polarity_scores(text or "")["compound"]
        if compound >= self.threshold:
            sentiment = "positive"
        elif compound <= -self.threshold:
            sentiment = "negative"
        else:
            sentiment = "neutral"
        return [Row(sentiment=sentiment, confidence=abs(compound))]
