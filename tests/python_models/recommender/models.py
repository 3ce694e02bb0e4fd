"""The third model of the lesson's pattern 2: recommends from a user's similar items.

It names the user and the items it was given, in order (``u7:item-3,item-9,...``), so a
test can check the VECTOR_SEARCH lists that reached it.
"""

from sluice import PyPredictFunction, Row


class Recommender(PyPredictFunction):
    def predict(self, data):
        user, similar = data[0], data[1]
        items = ",".join(similar or [])
        return [Row(recommendation=f"{user}:{items}")]
