"""Training and evaluation of the model (``python -m training.train``, ``python -m training.evaluate``).

Needs the train dependency group (scikit-learn, scipy, wordfreq) and the corpora in ../shared/data;
never part of the image. Writes the artifact that ``runtime`` serves.
"""
